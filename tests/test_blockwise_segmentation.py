"""Blockwise post-processing with daisy workers: voxel-wise equal to in memory, connected
components and affinities merged across block faces, resumable, failures reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from conftest import tiny_config
from funlib.geometry import Roi

import napari_dacapo.blockwise as blockwise
from napari_dacapo.blockwise import BlockwiseSegmentationError, segment_blockwise
from napari_dacapo.blockwise.fragments import (
    FRAGMENT_BIT,
    face_affinities,
    face_edges,
    fragment_ids,
    fragment_mapping,
    relabel,
)
from napari_dacapo.blockwise.scheduler import (
    finish_output,
    fresh_stamp,
    incomplete_output,
    recorded_job,
    stamp_output,
)
from napari_dacapo.checkpoints import best_parameters, load_run
from napari_dacapo.cli import main
from napari_dacapo.experiments import (
    AffinitiesTaskConfig,
    DistanceTaskConfig,
    HotDistanceTaskConfig,
)
from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import write_zarr_array
from napari_dacapo.experiments.tasks.predictors.affinities_predictor import offset_slices
from napari_dacapo.store.file_store import CheckpointError, FileStore

SHAPE = (40, 44)  # 3 x 3 blocks of 16 x 16; the last row and column are cut to 8 and 12
BLOCK = 16
NEIGHBORHOOD = [[1, 0], [0, 1], [0, 3], [3, 0]]


def objects() -> np.ndarray:
    """Solid objects, kept apart by background, that cross block borders."""
    labels = np.zeros(SHAPE, np.int64)
    labels[5:8, 10:41] = 1  # a bar across two vertical borders: three blocks
    labels[13:20, 13:20] = 2  # a square around the corner of four blocks
    labels[20:36, 2:4] = labels[20:36, 7:9] = labels[33:36, 2:9] = 3  # a U: its arms
    # meet only in the block below the one they start in
    labels[36:40, 30:44] = 4  # along the far edges, across the last vertical border
    labels[24:30, 36:43] = 5  # inside one block
    return labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` cut the volume into the same objects (ids may differ)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return (np.array_equal(a == 0, b == 0)
            and pairs.shape[1] == len(np.unique(a)) == len(np.unique(b)))


def stored_best(store, name, criterion, parameters_id):
    store.store_best(name, None, criterion, 0, parameters_id, 1.0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A store with three runs (never trained: post-processing needs only the task and the
    best parameters): connected components of two channels, thresholds and mutex
    watershed."""
    folder = tmp_path_factory.mktemp("segment")
    store = FileStore(folder / "runs")
    configs = {
        "cc": tiny_config(2, name="cc").replace(task_config=DistanceTaskConfig(
            name="cc", channels=["blob", "dense"], clip_distance=8.0, tol_distance=2.0)),
        "hot": tiny_config(2, name="hot").replace(task_config=HotDistanceTaskConfig(
            name="hot", channels=["a", "b"], clip_distance=8.0, tol_distance=2.0)),
        "affs": tiny_config(2, name="affs").replace(task_config=AffinitiesTaskConfig(
            name="affs", neighborhood=NEIGHBORHOOD)),
    }
    for config in configs.values():
        store.store_run_config(config)
    stored_best(store, "cc", "blob__f1_score", 2)  # threshold 0.0
    stored_best(store, "cc", "blob__precision", 3)
    stored_best(store, "hot", "a__f1_score", 3)  # threshold 0.4
    stored_best(store, "affs", "voi", 4)  # bias 0.5
    return store, folder


def in_memory(store, name, criterion, prediction):
    run, _ = load_run(name, store)
    return run.task.post_processor.process(prediction, best_parameters(run, criterion, store))


def markers(output: Path, step: str) -> dict[str, int]:
    folder = Path(f"{output.parent}.blocks") / output.name / step
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.name.isdigit()}


def test_fragments_merge_across_faces_into_numbered_objects():
    local = np.array([[[1, 0], [2, 2]], [[0, 1], [1, 1]]])  # two channels of one block
    ids = fragment_ids(local, block_index=3, block_voxels=4)
    others = fragment_ids(local, block_index=4, block_voxels=4)
    assert (ids[local == 0] == 0).all() and (ids[local > 0] >= FRAGMENT_BIT).all()
    assert len(np.unique(np.concatenate([ids[ids > 0], others[others > 0]]))) == 6

    # Across a face: background and a neighbour without fragments pair with nothing;
    # the weight of a pair is the mean over its voxel pairs.
    a, b, c = FRAGMENT_BIT + np.arange(1, 4, dtype=np.uint64)
    ours = np.array([a, a, b, 0, b], np.uint64)
    theirs = np.array([c, c, c, c, 5], np.uint64)  # 5: a final label, not a fragment
    pairs, mean = face_edges(ours, theirs, np.array([0.2, 0.6, 1.0, 1.0, 1.0]))
    assert pairs.tolist() == [[a, c], [b, c]] and np.allclose(mean, [0.4, 1.0])
    assert face_edges(ours, theirs)[1] is None

    # a-c and d-e join; sizes 2+1 and 1+1 voxels; min_size 3 drops d-e; f stays alone
    d, e, f = FRAGMENT_BIT + np.arange(4, 7, dtype=np.uint64)
    fragments, labels = fragment_mapping(
        np.array([f, c, a, d, b, e]), np.array([5, 1, 2, 1, 7, 1]),
        np.array([[a, c], [d, e], [c, a]]), min_size=3,
    )
    assert dict(zip(fragments.tolist(), labels.tolist())) == {
        a: 1, b: 2, c: 1, d: 0, e: 0, f: 3
    }
    block = np.array([[a, 0], [f, 2]], np.uint64)  # 2: a label already final
    once = relabel(block, fragments, labels)
    assert once.tolist() == [[1, 0], [3, 2]] and np.array_equal(
        relabel(once, fragments, labels), once)
    with pytest.raises(ValueError, match="inconsistent"):
        relabel(np.array([FRAGMENT_BIT + np.uint64(99)]), fragments, labels)
    with pytest.raises(ValueError, match="inconsistent"):
        fragment_mapping(np.array([a]), np.array([1]), np.array([[a, b]]))


def test_face_affinities_read_each_offset_at_its_end():
    # channel 0: offset +1 along axis 0 (stored at the lower voxel), channel 1: -1 (at the
    # upper one), channel 2: along the other axis (not across this face)
    affinities = np.zeros((3, 2, 3))
    affinities[0, 0] = [0.2, 0.4, 0.6]
    affinities[1, 1] = [0.4, 0.6, 0.8]
    affinities[2] = 1.0
    values = face_affinities(affinities, [[1, 0], [-1, 0], [0, 1]], axis=0)
    assert values.shape == (1, 3) and np.allclose(values, [[0.3, 0.5, 0.7]])


def test_segment_command_thresholds_blocks_as_in_memory(runs):
    """Voxel-wise: each block on its own equals the whole, exactly."""
    store, folder = runs
    prediction = np.random.default_rng(0).random((4, *SHAPE), dtype=np.float32)
    write_zarr_array(folder / "hot.zarr", "pred", prediction, voxel_size=(1, 1),
                     axis_names=["c^", "y", "x"], chunks=(4, BLOCK, BLOCK))
    result = CliRunner().invoke(main, [
        "segment", "--run", "hot", "--criterion", "a__f1_score", f"{folder}/hot.zarr/pred",
        f"{folder}/hot.zarr/masks", "--workers", "1", "--store", str(store.root),
    ])
    assert result.exit_code == 0, result.output
    assert (f"Post-processing {folder}/hot.zarr/pred block by block with 1 worker(s)"
            in result.output)
    masks = zarr.open_array(folder / "hot.zarr" / "masks", mode="r")
    expected = in_memory(store, "hot", "a__f1_score", prediction)
    assert masks.shape == expected.shape == (2, *SHAPE) and masks.chunks == (2, BLOCK, BLOCK)
    np.testing.assert_array_equal(masks[:], expected)


def test_connected_components_cross_blocks_and_restart(runs):
    store, folder = runs
    rng = np.random.default_rng(1)
    inside = np.stack([objects() > 0, rng.random(SHAPE) > 0.55])  # channel 1: dense noise
    # A band of noise: many small components crossing the vertical borders.
    inside[0, 0:3] = rng.random((3, SHAPE[1])) > 0.5
    inside[0, 31, 31] = inside[0, 32, 32] = True  # touch only diagonally at a block corner
    prediction = np.where(inside, 0.8, -0.8).astype(np.float32)
    write_zarr_array(folder / "cc.zarr", "pred", prediction, voxel_size=(1, 1),
                     axis_names=["c^", "y", "x"], chunks=(2, BLOCK, BLOCK))
    expected = in_memory(store, "cc", "blob__f1_score", prediction)

    # The chunk of the middle block cannot be read: its block fails and is reported.
    chunk = folder / "cc.zarr" / "pred" / "0.1.1"
    content = chunk.read_bytes()
    chunk.write_bytes(b"not a chunk")
    output = folder / "cc.zarr" / "labels"
    segment = lambda workers=2: segment_blockwise(  # noqa: E731
        "cc", f"{folder}/cc.zarr/pred", output, criterion="blob__f1_score", workers=workers,
        store=store, max_retries=0,
    )
    with pytest.raises(BlockwiseSegmentationError, match="not segmented") as error:
        segment(workers=1)
    assert Roi((16, 16), (16, 16)) in error.value.failed_rois
    before = markers(output, "segment")
    assert len(before) + len(error.value.failed_rois) == 9

    # Fixed and rerun: only the missing blocks are segmented again (two workers: daisy
    # orders neighbouring blocks, so that one sees the other's fragments).
    chunk.write_bytes(content)
    assert segment() == output
    after = markers(output, "segment")
    assert len(after) == 9 and all(after[b] == before[b] for b in before)
    labels = zarr.open_array(output, mode="r")[:]
    assert labels.dtype == np.uint64 and labels.shape == expected.shape == (2, *SHAPE)
    assert labels.max() == len(np.unique(labels)) - 1  # ids 1..n over both channels
    assert all(same_partition(labels[c], expected[c]) for c in range(2))
    bar, corner = labels[0, 5:8, 10:41], labels[0, 13:20, 13:20]
    assert len(np.unique(bar)) == len(np.unique(corner)) == 1 and bar[0, 0] != corner[0, 0]
    assert labels[0, 31, 31] != labels[0, 32, 32]

    # A relabel pass that was killed: the blocks without a marker are relabelled again
    # (relabelling twice changes nothing), the others are left alone.
    relabelled = markers(output, "relabel")
    lost = sorted(relabelled)[:2]
    for block in lost:
        (Path(f"{output.parent}.blocks") / "labels" / "relabel" / block).unlink()
    segment(workers=1)
    again = markers(output, "relabel")
    assert {b for b in again if again[b] != relabelled.get(b)} == set(lost)
    assert markers(output, "segment") == after
    np.testing.assert_array_equal(zarr.open_array(output, mode="r")[:], labels)

    # Other parameters over the same output are another job.
    with pytest.raises(FileExistsError, match=r"parameters_id \(3 here, 2 recorded\) differs"):
        segment_blockwise("cc", f"{folder}/cc.zarr/pred", output, criterion="blob__precision",
                          store=store)


def test_affinities_merge_fragments_across_faces(runs):
    """Mutex watershed per block with context: well-separated objects come out as in
    memory, one object each however many blocks they cross."""
    store, folder = runs
    truth = objects()
    affinities = np.zeros((len(NEIGHBORHOOD), *SHAPE), np.float32)
    for channel, offset in enumerate(NEIGHBORHOOD):
        here, there = offset_slices(SHAPE, offset)
        affinities[channel][here] = (truth[here] == truth[there]) & (truth[here] > 0)
    noise = np.random.default_rng(2).normal(0, 0.05, affinities.shape)
    affinities = np.clip(affinities * 0.9 + 0.05 + noise, 0, 1).astype(np.float32)
    write_zarr_array(folder / "affs.zarr", "pred", affinities, voxel_size=(1, 1),
                     axis_names=["c^", "y", "x"], chunks=(len(NEIGHBORHOOD), BLOCK, BLOCK))
    output = segment_blockwise("affs", f"{folder}/affs.zarr/pred",
                               f"{folder}/affs.zarr/labels", criterion="voi", workers=1,
                               store=store)
    labels = zarr.open_array(output, mode="r")[:]
    assert same_partition(labels, in_memory(store, "affs", "voi", affinities))
    assert same_partition(labels, truth)


def test_bad_segmentations_are_refused_with_the_fix(runs):
    store, folder = runs
    prediction = np.zeros((1, *SHAPE), np.float32)
    write_zarr_array(folder / "bad.zarr", "pred", prediction, voxel_size=(1, 1),
                     axis_names=["c^", "y", "x"], chunks=(1, BLOCK, BLOCK))
    write_zarr_array(folder / "bad.zarr", "plain", prediction[0], voxel_size=(1, 1))
    pred, out = f"{folder}/bad.zarr/pred", f"{folder}/bad.zarr/out"

    def refused(error, match, **kwargs):
        arguments = {"run": "cc", "prediction": pred, "output": out,
                     "criterion": "blob__f1_score",
                     "store": store, **kwargs}
        with pytest.raises(error, match=match):
            segment_blockwise(**arguments)

    refused(ValueError, "name the criterion.*validate a checkpoint first", criterion=None)
    refused(CheckpointError, "not been validated", criterion="dense__recall")
    refused(ValueError, "does not fit run 'affs'.*affinity channels", run="affs",
            criterion="voi")
    refused(ValueError, "no channel axis", prediction=f"{folder}/bad.zarr/plain")
    store.store_run_config(tiny_config(3, name="cc_3d").replace(
        task_config=store.retrieve_run_config("cc").task_config))
    stored_best(store, "cc_3d", "blob__f1_score", 2)
    refused(ValueError, "is 2D, but run 'cc_3d' predicts in 3D: it was not made by that run",
            run="cc_3d")
    refused(ValueError, "is the prediction itself", output=pred)
    refused(ValueError, "not inside the prediction", roi=Roi((30, 30), (20, 20)))
    refused(ValueError, "2 spatial axes", roi=Roi((0, 0, 0), (8, 8, 8)))
    refused(ValueError, "block_shape", block_shape=(16,))
    refused(ValueError, "placeholder", worker_command="bsub")
    refused(FileExistsError, "no such job is recorded",
            output=f"{folder}/bad.zarr/plain")
    store.store_run_config(tiny_config(2, name="affs_x").replace(task_config=(
        AffinitiesTaskConfig(name="affs_x", neighborhood=[[0, 1], [0, 2]]))))
    stored_best(store, "affs_x", "voi", 4)
    # Four affinity channels, as the "affs" run predicts them (written here: this test
    # must not depend on another one having run first).
    write_zarr_array(folder / "bad.zarr", "affs", np.zeros((4, *SHAPE), np.float32),
                     voxel_size=(1, 1), axis_names=["c^", "y", "x"], chunks=(4, BLOCK, BLOCK))
    refused(ValueError, "no one-step offset along spatial axis 0", run="affs_x",
            criterion="voi", prediction=f"{folder}/bad.zarr/affs")


def test_predict_command_segments_after_predicting(runs, monkeypatch):
    """predict --workers --segment: the criterion is checked first, then the prediction is
    written and post-processed (both faked here; they are tested above)."""
    store, folder = runs
    calls = []
    monkeypatch.setattr(blockwise, "predict_blockwise",
                        lambda *args, **kwargs: calls.append(("predict", args, kwargs))
                        or Path(args[3]))
    monkeypatch.setattr(blockwise, "segment_blockwise",
                        lambda *args, **kwargs: calls.append(("segment", args, kwargs))
                        or Path(args[2]))
    args = ["predict", "--run", "cc", "--checkpoint", "best:blob__f1_score",
            f"{folder}/in.zarr/raw",
            f"{folder}/out.zarr/pred", "--store", str(store.root), "--workers", "3",
            "--segment", f"{folder}/out.zarr/labels"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert [c[0] for c in calls] == ["predict", "segment"]
    _, (run, prediction, labels), options = calls[1]
    assert (run, prediction, labels) == ("cc", f"{folder}/out.zarr/pred",
                                          f"{folder}/out.zarr/labels")
    assert options["criterion"] == "blob__f1_score" and options["workers"] == 3

    calls.clear()
    for changed, code, message in (
        (["--checkpoint", "0"], 1, "name the criterion"),
        (["--criterion", "accuracy"], 1, "not a criterion"),
    ):
        result = CliRunner().invoke(main, [*args, *changed])
        assert result.exit_code == code and message in result.output, result.output
    assert not calls  # refused before predicting
    result = CliRunner().invoke(main, [*args[:-4], "--segment", f"{folder}/out.zarr/l"])
    assert result.exit_code == 2 and "need --workers" in result.output
    result = CliRunner().invoke(main, [*args[:-2], "--criterion", "f1_score"])
    assert result.exit_code == 2 and "--segment" in result.output
    result = CliRunner().invoke(main, ["segment", "--run", "cc", "p.zarr/p", "o.zarr/o",
                                       "--block-shape", "a,b"])
    assert result.exit_code == 2 and "voxel counts" in result.output


def test_segment_regions_must_lie_inside_the_prediction(runs):
    store, folder = runs
    prediction = np.zeros((4, *SHAPE), np.float32)  # 80 x 88 world units
    write_zarr_array(folder / "region.zarr", "pred", prediction, voxel_size=(2, 2),
                     axis_names=["c^", "y", "x"], chunks=(4, BLOCK, BLOCK))
    output = folder / "region.zarr" / "masks"

    def refused(roi, match):
        with pytest.raises(ValueError, match=match):
            segment_blockwise("hot", f"{folder}/region.zarr/pred", output,
                              criterion="a__f1_score", roi=roi, store=store)

    refused(Roi((0, 0), (0, 8)), "no positive size")
    refused(Roi((0, 0), (-8, 8)), "no positive size")
    refused(Roi((70, 0), (20, 20)), "reaches outside it. Use its part inside, 70,0:10,20")
    refused(Roi((200, 200), (10, 10)), r"do not overlap \(the prediction covers 0,0:80,88\)")
    refused(Roi((1, 0), (4, 4)), r"not on the voxel grid.*multiples of \(2, 2\). Use 0,0:6,4")
    result = CliRunner().invoke(main, [
        "segment", "--run", "hot", "--criterion", "a__f1_score", f"{folder}/region.zarr/pred",
        str(output), "--roi", "0,0:-5,5", "--store", str(store.root),
    ])
    assert result.exit_code == 2 and "--roi" in result.output and "shape of zero" in (
        result.output), result.output
    assert not output.exists() and not (folder / "region.zarr.blocks").exists()


def test_segmentation_notices_a_prediction_written_anew(runs, monkeypatch):
    """As predict refuses another job over its output: a segmentation of a prediction that
    was replaced since is another segmentation (never "done" with the old blocks)."""
    store, folder = runs
    rng = np.random.default_rng(5)

    def write_prediction():
        prediction = rng.random((4, *SHAPE), dtype=np.float32)
        write_zarr_array(folder / "anew.zarr", "pred", prediction, voxel_size=(1, 1),
                         axis_names=["c^", "y", "x"], chunks=(4, BLOCK, BLOCK))
        return prediction, stamp_output(folder / "anew.zarr", "pred")  # as predict does

    first, stamp = write_prediction()
    monkeypatch.chdir(folder)
    segment = lambda **kwargs: segment_blockwise(  # noqa: E731
        "hot", "anew.zarr/pred", "anew.zarr/masks", criterion="a__f1_score", workers=1,
        store=store, **kwargs)
    output = segment()
    job = recorded_job(folder / "anew.zarr", "masks")
    assert job.prediction_file == str((folder / "anew.zarr").resolve())  # workers start anywhere
    assert job.prediction_stamp == stamp
    before = markers(folder / "anew.zarr" / "masks", "segment")
    segment()  # the same prediction: resumed, nothing redone
    assert markers(folder / "anew.zarr" / "masks", "segment") == before

    second, _ = write_prediction()
    with pytest.raises(FileExistsError, match="prediction was written anew since.*overwrite=True"):
        segment()
    segment(overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(output, mode="r")[:],
                                  in_memory(store, "hot", "a__f1_score", second))


def test_predict_command_refuses_labels_over_its_input_or_prediction(runs, monkeypatch):
    """Checked before predicting: the segmentation would replace the raw data (or the
    prediction it reads) once the prediction ran."""
    store, folder = runs
    calls = []
    monkeypatch.setattr(blockwise, "predict_blockwise",
                        lambda *args, **kwargs: calls.append("predict") or Path(args[3]))
    args = ["predict", "--run", "cc", "--checkpoint", "best:blob__f1_score",
            f"{folder}/in.zarr/raw", f"{folder}/out.zarr/pred", "--store", str(store.root),
            "--workers", "1", "--overwrite", "--segment"]
    for labels, message in ((f"{folder}/in.zarr/raw", "is the input itself"),
                            (f"{folder}/out.zarr/pred", "is the prediction itself")):
        result = CliRunner().invoke(main, [*args, labels])
        assert result.exit_code == 1 and message in result.output, result.output
    assert not calls


def test_an_incomplete_prediction_is_refused_before_any_work(runs):
    """Its missing blocks hold zeros, which a segmentation would take for background."""
    store, folder = runs
    unfinished = ("the blockwise prediction writing it was interrupted or is still running; "
                  "to finish it, rerun the same predict command")
    write_zarr_array(folder / "partial.zarr", "pred", np.zeros((4, *SHAPE), np.float32),
                     voxel_size=(1, 1), axis_names=["c^", "y", "x"], chunks=(4, BLOCK, BLOCK),
                     attributes=fresh_stamp(unfinished))  # as an interrupted predict leaves it
    output = folder / "partial.zarr" / "masks"
    with pytest.raises(ValueError, match=f"partial.zarr/pred is incomplete: {unfinished}"):
        segment_blockwise("hot", f"{folder}/partial.zarr/pred", output,
                          criterion="a__f1_score", workers=1, store=store)
    result = CliRunner().invoke(main, [
        "segment", "--run", "hot", "--criterion", "a__f1_score", f"{folder}/partial.zarr/pred",
        str(output), "--workers", "1", "--store", str(store.root)])
    assert result.exit_code == 1 and "is incomplete: the blockwise prediction" in (
        result.output) and "Wrote segmentation" not in result.output, result.output
    assert not output.exists() and not (folder / "partial.zarr.blocks").exists()

    finish_output(folder / "partial.zarr", "pred")  # as its job does at its end
    segment_blockwise("hot", f"{folder}/partial.zarr/pred", output, criterion="a__f1_score",
                      workers=1, store=store)
    assert incomplete_output(folder / "partial.zarr", "masks") is None


def test_an_interrupted_segmentation_is_marked_incomplete_until_finished(runs, monkeypatch):
    """Killed during its relabel pass, every block is written but holds fragment ids: the
    output says it is incomplete until the rerun relabels it."""
    import napari_dacapo.blockwise.segmentation as segmentation

    store, folder = runs
    prediction = np.stack([objects() > 0] * 2).astype(np.float32)
    write_zarr_array(folder / "killed.zarr", "pred", prediction, voxel_size=(1, 1),
                     axis_names=["c^", "y", "x"], chunks=(2, BLOCK, BLOCK))
    real_run_step = segmentation.run_step

    def killed_in_relabel(job, step, **options):
        if step.name == "relabel":
            raise KeyboardInterrupt
        real_run_step(job, step, **options)

    segment = lambda: segment_blockwise(  # noqa: E731
        "cc", f"{folder}/killed.zarr/pred", folder / "killed.zarr/labels",
        criterion="blob__f1_score", workers=1, store=store)
    monkeypatch.setattr(segmentation, "run_step", killed_in_relabel)
    with pytest.raises(KeyboardInterrupt):
        segment()
    unfinished = incomplete_output(folder / "killed.zarr", "labels")
    assert unfinished and "rerun the same segment command" in unfinished
    assert zarr.open_array(folder / "killed.zarr/labels", mode="r")[:].max() >= FRAGMENT_BIT

    monkeypatch.setattr(segmentation, "run_step", real_run_step)
    output = segment()
    assert incomplete_output(output.parent, output.name) is None
    labels = zarr.open_array(output, mode="r")[:]
    expected = in_memory(store, "cc", "blob__f1_score", prediction)
    assert all(same_partition(labels[c], expected[c]) for c in range(2))


def test_segment_writes_into_a_zarr_format_3_container_in_its_format(runs):
    store, folder = runs
    zarr.open_group(folder / "v3.zarr", mode="w", zarr_format=3)
    prediction = np.random.default_rng(2).random((4, *SHAPE), dtype=np.float32)
    write_zarr_array(folder / "v3.zarr", "pred", prediction, voxel_size=(1, 1),
                     axis_names=["c^", "y", "x"], chunks=(4, BLOCK, BLOCK))
    result = CliRunner().invoke(main, [
        "segment", "--run", "hot", "--criterion", "a__f1_score", f"{folder}/v3.zarr/pred",
        f"{folder}/v3.zarr/masks", "--workers", "1", "--store", str(store.root)])
    assert result.exit_code == 0, result.output
    assert (folder / "v3.zarr" / "masks" / "zarr.json").exists()
    np.testing.assert_array_equal(zarr.open_array(folder / "v3.zarr/masks", mode="r")[:],
                                  in_memory(store, "hot", "a__f1_score", prediction))


def test_predict_command_refuses_labels_of_another_job_before_predicting(runs, monkeypatch):
    """The segmentation after the prediction would refuse LABELS: said before predicting
    (which takes long), with the command that segments into it alone, since --overwrite
    here would predict the prediction anew too."""
    store, folder = runs
    prediction = np.stack([objects() > 0] * 2).astype(np.float32)
    write_zarr_array(folder / "earlier.zarr", "pred", prediction, voxel_size=(1, 1),
                     axis_names=["c^", "y", "x"], chunks=(2, BLOCK, BLOCK))
    stamp_output(folder / "earlier.zarr", "pred")  # as predict does
    segment_blockwise("cc", f"{folder}/earlier.zarr/pred", f"{folder}/earlier.zarr/labels",
                      criterion="blob__f1_score", workers=1, store=store)
    calls = []
    monkeypatch.setattr(blockwise, "predict_blockwise",
                        lambda *args, **kwargs: calls.append("predict") or Path(args[3]))
    monkeypatch.setattr(blockwise, "segment_blockwise",
                        lambda *args, **kwargs: calls.append("segment") or Path(args[2]))
    labels = f"{folder}/earlier.zarr/labels"
    args = ["predict", "--run", "cc", "--checkpoint", "best:blob__f1_score",
            f"{folder}/in.zarr/raw", f"{folder}/later.zarr/pred", "--store", str(store.root),
            "--workers", "2", "--segment", labels]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and not calls, result.output
    assert (f"{labels} (--segment) already exists and was not written by a segmentation of "
            f"this prediction (it segments another prediction: {folder}/later.zarr/pred is "
            f"not written yet). Nothing was predicted. To segment the prediction into it "
            f"anew, run this command without --segment, then: napari-dacapo segment --run cc "
            f"--criterion blob__f1_score {folder}/later.zarr/pred {labels} --workers 2 "
            f"--store {store.root} --overwrite. Or give --segment another LABELS array."
            ) in result.output, result.output

    # The segmentation of the prediction as it is resumes; --overwrite replaces both.
    calls.clear()
    result = CliRunner().invoke(main, [*args[:6], f"{folder}/earlier.zarr/pred", *args[7:]])
    assert result.exit_code == 0 and calls == ["predict", "segment"], result.output
    calls.clear()
    result = CliRunner().invoke(main, [*args, "--overwrite"])
    assert result.exit_code == 0 and calls == ["predict", "segment"], result.output
