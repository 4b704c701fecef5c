"""The headless face: ``napari-dacapo train | validate | predict | segment | export | runs |
example``.

A thin layer over the operations: it consumes their events (training iterations,
prediction tiles) and results, and turns them into progress bars, tables and log lines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import click

from napari_dacapo import __version__

logger = logging.getLogger("napari_dacapo")

store_option = click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="NAPARI_DACAPO_ROOT",
    help="Folder that holds the runs (default: $NAPARI_DACAPO_ROOT or the user data folder).",
)


worker_command_option = click.option(
    "--worker-command", default=None,
    help="With --workers: a shell command template that starts a worker elsewhere and "
    "waits for it, e.g. 'bsub -K -n 1 {command}' (default: local processes).",
)

worker_threads_option = click.option(
    "--worker-threads", type=click.IntRange(min=1), default=None,
    help="With --workers: compute threads of each worker (default: local workers share "
    "the cores out, cores // workers each; --worker-command workers keep the default).",
)


@click.group()
@click.version_option(__version__, prog_name="napari-dacapo")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Train, validate and apply DaCapo segmentation models."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # warnings meant for the user, without Python's source line
        warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if category.__name__ == "VoxelSizeWarning":  # its fix in the words of the predict command
        from napari_dacapo.predict.voxel_sizes import VOXEL_SIZE_FIX, VOXEL_SIZE_FIX_COMMAND

        message = str(message).replace(VOXEL_SIZE_FIX, VOXEL_SIZE_FIX_COMMAND)
    _warn(message)


def _warn(message: object) -> None:
    """Say a warning to the user, as one ``Warning:`` line: on a line of its own also
    while a progress bar is drawn (a warning of the training loop), which is drawn again
    under it."""
    from tqdm import tqdm

    with tqdm.external_write_mode(file=sys.stderr):  # a bar is cleared, drawn again after
        click.echo(f"Warning: {message}", err=True)


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--run", "run_name", default=None, help="Continue a stored run by name.")
@click.option(
    "--iterations", type=click.IntRange(min=1), default=None,
    help="Train until this many iterations (continue a stored run for longer).",
)
@click.option("--device", default=None, help="Device to train on: cpu, cuda, cuda:1, mps.")
@click.option("--no-validate", is_flag=True, help="Skip validation.")
@click.option(
    "--keep-all-checkpoints", is_flag=True,
    help="Keep every checkpoint (default: only the latest and the best per criterion).",
)
@store_option
def train(config, run_name, iterations, device, no_validate, keep_all_checkpoints, store) -> None:
    """Train the run described by CONFIG (a YAML file; DaCapo's run YAML works too), or
    continue the stored run given by --run."""
    from napari_dacapo.experiments.configs import load_config
    from napari_dacapo.store.file_store import FileStore

    file_store = FileStore(store, keep_all=keep_all_checkpoints)
    if (config is None) == (run_name is None):
        raise click.UsageError("Give either a CONFIG file or --run NAME.")
    if config is not None:
        ignored: list[str] = []
        # A config that does not load is a message, not a traceback; fields only DaCapo
        # knows are said once, in one line (not also logged field by field).
        configs_log = logging.getLogger("napari_dacapo.experiments.configs")
        level = configs_log.level
        configs_log.setLevel(logging.ERROR)
        try:
            with _user_errors():
                run_config = load_config(config, ignored=ignored)
        finally:
            configs_log.setLevel(level)
        if ignored:
            click.echo(
                f"Ignored {len(ignored)} field(s) that napari-dacapo does not use: "
                + ", ".join(ignored),
                err=True,
            )
    else:
        with _user_errors():  # no such run: the message names the store and --store
            run_config = file_store.retrieve_run_config(run_name)
    train_until = None
    if iterations is not None and run_name is not None:
        done = file_store.latest_iteration(run_name) or 0
        if iterations <= done:
            raise click.BadParameter(
                f"run '{run_name}' has trained {done} iterations already; give more than "
                f"{done} to train it further.", param_hint="--iterations",
            )
        if iterations < run_config.num_iterations:
            # A stopped run trained for fewer than its total: its stored config (which
            # never shrinks) stays, training stops early.
            train_until = iterations
    if iterations is not None and train_until is None:
        run_config = run_config.replace(num_iterations=iterations)
    _train(run_config, file_store, device, validate=not no_validate, train_until=train_until)


@main.command()
@click.option("--dims", type=click.Choice(["2", "3"]), default="2", help="2D or 3D example.")
@click.option("--iterations", type=click.IntRange(min=1), default=200, help="Iterations.")
@click.option("--name", default=None, help="Run name (default example_<dims>d).")
@click.option("--device", default=None, help="Device to train on: cpu, cuda, cuda:1, mps.")
@store_option
def example(dims, iterations, name, device, store) -> None:
    """Train the bundled synthetic example (blobs) headless."""
    from napari_dacapo.examples import example_run_config
    from napari_dacapo.store.file_store import FileStore

    config = example_run_config(
        int(dims), name=name, iterations=iterations, validation_interval=max(iterations // 2, 1)
    )
    file_store = FileStore(store)
    _refuse_other_iterations(config, file_store)
    if name is None:
        config = _free_example_name(config, file_store)
    _train(config, file_store, device, validate=True)


def _refuse_other_iterations(config, file_store) -> None:
    """Refuse to train the example under the name of a stored run of this very example
    with another iteration count, saying the command that continues it: ``example``
    starts a run (its validation interval follows the iterations), ``train --run``
    continues one."""
    from napari_dacapo.store.file_store import StoreError

    if not file_store.has_run(config.name):
        return
    with _user_errors():
        stored = file_store.retrieve_run_config(config.name)
    if stored.num_iterations == config.num_iterations:
        return
    same = config.replace(num_iterations=stored.num_iterations,
                          validation_interval=stored.validation_interval)
    try:
        file_store.check_run_config(same)
    except StoreError:
        return  # another example (or run) under this name: as before
    raise click.ClickException(
        f"Run '{config.name}' is this example, stored with {stored.num_iterations} "
        f"iterations. To train it further, run: "
        f"{_train_command(config.name, file_store, config.num_iterations)}. To train a new "
        f"example, give another --name."
    )


def _free_example_name(config, file_store):
    """``config`` under its default name, or under the first name after it (``_2``,
    ``_3`` ...) that is free or holds this very config: a run stored by an older version
    of the example must not stop ``make run`` after an upgrade."""
    import dataclasses
    import itertools

    from napari_dacapo.store.file_store import StoreError

    base = config.name
    for n in itertools.count(1):
        candidate = config if n == 1 else dataclasses.replace(config, name=f"{base}_{n}")
        try:
            file_store.check_run_config(candidate)
        except StoreError:
            continue
        if n > 1:
            click.echo(
                f"The stored run '{base}' was made from another version of the example; "
                f"training this one as '{candidate.name}'."
            )
        return candidate
    raise AssertionError("unreachable")


@main.command()
@store_option
def runs(store) -> None:
    """List stored runs with their progress and best validation score (of the task's first
    criterion that has one; `validate` prints them all)."""
    from napari_dacapo.store.file_store import ROOT_ENV, FileStore

    file_store = FileStore(store)
    if store is not None and not file_store.root.exists():
        # A store named by --store or NAPARI_DACAPO_ROOT is likely mistyped; the default
        # store is missing only until the first run is trained.
        raise click.ClickException(
            f"The store {file_store.root} does not exist. Check the path given by --store "
            f"(or {ROOT_ENV}); runs are stored there when one is first trained."
        )
    names = file_store.list_runs()
    if not names:
        click.echo(f"No runs stored in {file_store.root}.")
        return
    click.echo(f"Runs in {file_store.root}:")
    for name in names:
        try:
            config = file_store.retrieve_run_config(name)
            latest = file_store.latest_iteration(name)
            progress = f"{latest or 0}/{config.num_iterations} iterations"
            if best := _best_score(file_store, name, config):
                progress += f", {best}"
            if (holder := file_store.lock_holder(name)) is not None:
                progress += f", training now (pid {holder})"
        except Exception as e:  # a damaged run folder must not hide the others
            progress = f"unreadable ({e})"
        click.echo(f"  {name}: {progress}")


def _best_score(store, name: str, config) -> str:
    """E.g. ``best blob__dice 0.912 at iteration 300``, for the first of the run's criteria
    with a recorded best ('' before any validation)."""
    task = config.task_config.task_type(config.task_config)
    for criterion in task.evaluation_scores.criteria:
        if (best := store.retrieve_best(name, criterion)) is not None:
            gone = ("" if int(best["iteration"]) in store.checkpoint_iterations(name)
                    else " (its checkpoint is missing: pruned or deleted)")
            return (f"best {criterion} {float(best['value']):.3g} at iteration "
                    f"{best['iteration']}{gone}")
    return ""


@main.command()
@click.option("--run", "run_name", required=True, help="The stored run.")
@click.option(
    "--iteration", required=True,
    help="The checkpoint to validate: an iteration, 'latest', or 'best:<criterion>' (e.g. "
    "best:f1_score).",
)
@click.option("--device", default=None, help="Device to predict on: cpu, cuda, cuda:1, mps.")
@store_option
def validate(run_name, iteration, device, store) -> None:
    """Validate a stored checkpoint of a run, store its scores and print them."""
    from napari_dacapo.experiments.run import Run
    from napari_dacapo.store.file_store import FileStore
    from napari_dacapo.validate import validate_checkpoint

    file_store = FileStore(store)
    with _user_errors():
        event = validate_checkpoint(run_name, iteration, store=file_store, device=device)
        scores = Run.get_validation_scores(file_store.retrieve_run_config(run_name))
    at_iteration = scores.subscores([event.scores])
    rows = [("criterion", f"iteration {event.iteration}", "best parameters", "best so far")]
    for criterion in event.criteria:
        found = at_iteration.best(criterion)
        best = event.best.get(criterion)
        rows.append((
            criterion,
            "nan" if found is None else f"{found[2]:.4g}",
            "-" if found is None else str(found[1]),
            "-" if best is None else f"{best[1]:.4g} (iteration {best[0]})",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


@main.command()
@click.option("--run", "run_name", required=True, help="The stored run.")
@click.option(
    "--checkpoint", default="latest", show_default=True,
    help="An iteration, 'latest', or 'best:<criterion>' (e.g. best:f1_score).",
)
@click.argument("input_path", metavar="INPUT")
@click.argument("output_path", metavar="OUTPUT")
@click.option(
    "--labels", is_flag=True,
    help="Write the post-processed segmentation instead of the prediction.",
)
@click.option(
    "--criterion", default=None,
    help="Post-process with the best parameters for this criterion (implies --labels, or "
    "with --workers applies to --segment; default: the criterion of a best:<criterion> "
    "checkpoint).",
)
@click.option("--device", default=None, help="Device to predict on: cpu, cuda, cuda:1, mps.")
@click.option(
    "--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None,
    help="Numeric precision (default: the run's trainer setting).",
)
@click.option(
    "--intensities", default="training", show_default=True, metavar="MODE",
    help="How INPUT's intensities are scaled: 'training' (as the run's training data "
    "was), 'image' (from INPUT's own 1st-99.8th percentiles: for an image brighter or "
    "dimmer than the training data; runs trained with a range or on uint8 images), "
    "'stored' (no rescaling) "
    "or LOW,HIGH (LOW becomes 0 and HIGH 1).",
)
@click.option(
    "--voxel-size", default=None, metavar="Z,Y,X",
    help="INPUT's voxel size, one whole number per spatial axis, comma-separated, for an "
    "input whose zarr attributes lack it or state it wrongly (default: as they state it, "
    "else 1).",
)
@click.option(
    "--offset", default=None, metavar="Z,Y,X",
    help="INPUT's offset (the world position of its first voxel, a multiple of the voxel "
    "size), for an input whose zarr attributes lack it or state it wrongly.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT array.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None,
    help="Predict block by block with this many daisy worker processes (for volumes "
    "bigger than memory); rerunning an interrupted prediction redoes only missing blocks.",
)
@click.option(
    "--roi", default=None, metavar="OFFSET:SHAPE",
    help="With --workers: the world region to predict, e.g. 0,0,0:100,512,512 "
    "(default: all of INPUT).",
)
@worker_command_option
@worker_threads_option
@click.option(
    "--segment", "segment_path", default=None, metavar="LABELS",
    help="With --workers: then also post-process the prediction block by block into the "
    "zarr array LABELS (container.zarr/dataset), with the best parameters for --criterion "
    "or the best:<criterion> checkpoint's (see the segment command).",
)
@store_option
def predict(run_name, checkpoint, input_path, output_path, labels, criterion, device,
            precision, intensities, voxel_size, offset, overwrite, workers, roi, worker_command,
            worker_threads, segment_path, store) -> None:
    """Predict the zarr array INPUT (container.zarr/dataset) with a run's checkpoint and
    write OUTPUT (container.zarr/dataset) with the input's geometry.

    The prediction is written tile by tile; with --labels it is post-processed as a whole.
    With --workers, daisy workers predict and write the tiles in parallel, and --segment
    post-processes the written prediction block by block as well; Ctrl-C or SIGTERM stop
    them (exit code 130 or 143), and the same command run again finishes the job.
    """
    from tqdm import tqdm

    from napari_dacapo.blockwise.locations import check_output_path
    from napari_dacapo.blockwise.scheduler import (
        discard_job,
        finish_output,
        fresh_stamp,
        incomplete_output,
    )
    from napari_dacapo.checkpoints import criterion_of, load_run
    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array import (
        prepare_zarr_array,
        write_zarr_array,
    )
    from napari_dacapo.predict import (
        NON_FINITE_PREDICTION,
        PredictionStarted,
        assemble,
        non_finite,
        post_processing,
        predict_tiles,
    )
    from napari_dacapo.store.file_store import FileStore

    in_file, in_dataset = _zarr_path(input_path, "INPUT")
    out_file, out_dataset = _zarr_path(output_path, "OUTPUT")
    rescale = _intensities(intensities)
    geometry = {
        "voxel_size": _numbers(voxel_size, "--voxel-size", "positive whole numbers", True),
        "offset": _numbers(offset, "--offset"),
    }
    with _user_errors():  # before predicting, which may take long
        check_output_path(output_path, [(in_file, in_dataset)])
        if segment_path is not None:
            check_output_path(segment_path, [(in_file, in_dataset)])
            check_output_path(segment_path, [(out_file, out_dataset)], what="prediction")
    with _user_errors(), _geometry_said_once(geometry):
        raw = _input_config(in_file, in_dataset, geometry)
    if workers is None and (roi or worker_command or worker_threads or segment_path):
        raise click.UsageError(
            "--roi, --worker-command, --worker-threads and --segment need --workers N."
        )
    if workers is not None:
        if labels or (criterion is not None and segment_path is None):
            raise click.UsageError(
                "--workers writes the prediction; to post-process it block by block too, "
                "give --segment LABELS (with --criterion) instead of --labels."
            )
        criterion = criterion or criterion_of(checkpoint)
        with _stopped_blockwise(checkpoint, output_path), _geometry_said_once(geometry):
            if segment_path is not None:
                _zarr_path(segment_path, "--segment")
                with _user_errors():  # an unusable criterion fails before predicting
                    _segmentation_parameters(run_name, criterion, store)
                if not overwrite:  # --overwrite replaces both arrays
                    _check_segmentation_output(run_name, output_path, segment_path, criterion,
                                               workers, worker_command, worker_threads, store)
            rescale = _measured_range(run_name, raw, rescale, store)
            _predict_blockwise(run_name, checkpoint, raw, output_path, workers, _roi(roi),
                               worker_command, worker_threads, device, precision, rescale,
                               overwrite, store)
            if segment_path is not None:
                _segment_blockwise(run_name, output_path, segment_path, criterion, workers,
                                   None, None, worker_command, worker_threads, overwrite, store)
        return
    labels = labels or criterion is not None
    if out_dataset and (out_file / out_dataset).exists() and not overwrite:
        # Checked before predicting, which may take long.
        unfinished = incomplete_output(out_file, out_dataset)
        state = "" if unfinished is None else f" and is incomplete: {unfinished}"
        raise click.ClickException(
            f"{out_file}/{out_dataset} already exists{state}. Pass --overwrite to replace "
            f"it, or choose another OUTPUT."
        )
    with _user_errors(), _geometry_said_once(geometry):
        run, file_store = load_run(run_name, FileStore(store))
        raw_array = raw.array()
        spatial_axes = raw_array.axis_names[raw_array.channel_dims :]
        # Fail on a never-validated criterion before predicting anything.
        process = (
            post_processing(run, criterion or criterion_of(checkpoint), file_store)
            if labels else None
        )
        rescale = _measured_range(run, raw, rescale, file_store)
        events = predict_tiles(run, checkpoint, raw, store=file_store, device=device,
                               precision=precision, rescale=rescale)
        start = next(events)
        assert isinstance(start, PredictionStarted)
        click.echo(f"Predicting {in_file}/{in_dataset} with '{run.name}' iteration "
                   f"{start.iteration} in {start.num_tiles} tiles", err=True)
        # A fresh stamp (segmentations of an older array notice), and marked incomplete
        # from when it is made until every tile is written (finish_output).
        placed = {"voxel_size": start.voxel_size, "offset": start.roi.offset,
                  "units": raw_array.units, "overwrite": overwrite,
                  "attributes": fresh_stamp(
                      "the predict command writing it was interrupted or is still "
                      "running; to finish it, predict it again with --overwrite")}
        # The array is replaced: a blockwise job's done markers must not outlive it.
        discard_job(out_file, out_dataset)
        with tqdm(events, total=start.num_tiles, unit="tile", file=sys.stderr) as tiles:
            if process is not None:
                prediction, _, _ = assemble([start, *tiles])
                finite = not non_finite(prediction)
                segmentation = process(prediction)
                channels = ["c^"] if segmentation.ndim > len(spatial_axes) else []
                written = write_zarr_array(
                    out_file, out_dataset, segmentation, axis_names=channels + spatial_axes,
                    **placed,
                )
            else:
                written = prepare_zarr_array(
                    out_file, out_dataset, start.shape, "float32",
                    axis_names=["c^", *spatial_axes],
                    chunks=(start.num_channels, *start.tile_shape), **placed,
                ).replace(mode="r+")
                out = written.array()
                finite = True
                for tile in tiles:
                    out[tile.roi] = tile.data
                    finite = finite and not non_finite(tile.data)
            finish_output(out_file, out_dataset)
            if not finite:
                _warn(NON_FINITE_PREDICTION)
    click.echo(f"Wrote {'labels' if labels else 'prediction'} to {written.file_name}/"
               f"{written.dataset}")


@main.command()
@click.option(
    "--run", "run_name", required=True, help="The stored run whose post-processor to use."
)
@click.option(
    "--criterion", default=None,
    help="Post-process with the parameters validation found best for this criterion, e.g. "
    "f1_score (needed unless the post-processor has a single parameter set).",
)
@click.argument("prediction_path", metavar="PREDICTION")
@click.argument("output_path", metavar="OUTPUT")
@click.option(
    "--workers", type=click.IntRange(min=1), default=2, show_default=True,
    help="How many daisy worker processes post-process blocks at once.",
)
@click.option(
    "--roi", default=None, metavar="OFFSET:SHAPE",
    help="The world region to segment, e.g. 0,0,0:100,512,512 (default: all of PREDICTION).",
)
@click.option(
    "--block-shape", default=None, metavar="Z,Y,X",
    help="Voxels per block, comma-separated (default: the chunks of PREDICTION).",
)
@worker_command_option
@worker_threads_option
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT array.")
@store_option
def segment(run_name, criterion, prediction_path, output_path, workers, roi, block_shape,
            worker_command, worker_threads, overwrite, store) -> None:
    """Post-process the prediction PREDICTION (container.zarr/dataset, e.g. written by
    predict --workers) block by block into the segmentation OUTPUT (container.zarr/dataset),
    with the run's post-processor.

    Thresholds and argmax are applied per block. Connected components are merged across
    block faces and give exactly the in-memory objects; affinities (mutex watershed,
    watershed) are agglomerated per block with context and merged across faces where the
    mean affinity exceeds the bias, which matches the in-memory result for well-separated
    objects. Rerunning an interrupted segmentation redoes only the missing blocks; Ctrl-C
    or SIGTERM stop it (exit code 130 or 143).
    """
    _zarr_path(prediction_path, "PREDICTION")
    _zarr_path(output_path, "OUTPUT")
    block_shape = _numbers(block_shape, "--block-shape", "voxel counts", positive=True)
    with _stopped_blockwise(None, output_path):
        _segment_blockwise(run_name, prediction_path, output_path, criterion, workers,
                           _roi(roi), block_shape, worker_command, worker_threads, overwrite,
                           store)


@main.command()
@click.option("--run", "run_name", required=True, help="The stored run.")
@click.option(
    "--checkpoint", default="latest", show_default=True,
    help="An iteration, 'latest', or 'best:<criterion>'.",
)
@click.option(
    "--criterion", default=None,
    help="Record the best post-processing parameters for this criterion (default: the "
    "criterion of a best:<criterion> checkpoint).",
)
@click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in OUTPUT_DIR.")
@store_option
def export(run_name, checkpoint, criterion, output_dir, overwrite, store) -> None:
    """Export a run's model as TorchScript plus model.yaml (input shape, voxel size,
    channels, normalisation, post-processing) into OUTPUT_DIR, for use outside napari."""
    from napari_dacapo.export import export_model
    from napari_dacapo.store.file_store import FileStore

    with _user_errors():
        exported = export_model(run_name, checkpoint, output_dir, criterion=criterion,
                                store=FileStore(store), overwrite=overwrite)
    click.echo(f"Exported '{run_name}' iteration {exported.iteration}: {exported.model} and "
               f"{exported.metadata}")


@main.command("import-dacapo")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("weights", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--checkpoint", default="latest", show_default=True,
    help="The DaCapo checkpoint: 'latest' or an iteration.",
)
@click.option("--name", default=None, help="Store the run under this name (default: its own).")
@click.option(
    "--iteration", type=click.IntRange(min=0), default=None,
    help="The checkpoint's iteration, for a file whose name or records do not give it "
    "(default: its name, as DaCapo's checkpoints/iterations/<N> or <N>.pt, or what DaCapo's "
    "best weights link to or record).",
)
@store_option
def import_dacapo(config, weights, checkpoint, name, iteration, store) -> None:
    """Store a run trained with DaCapo: its run YAML (CONFIG, from DaCapo's
    configs/runs/) and a checkpoint of its WEIGHTS (the run's folder under DaCapo's
    runs_base_dir, or one checkpoint file), to predict with it or train it further here."""
    from napari_dacapo.dacapo_import import import_dacapo_run
    from napari_dacapo.store.file_store import FileStore

    file_store = FileStore(store)
    with _user_errors():
        stored, iteration = import_dacapo_run(config, weights, checkpoint, name, file_store,
                                              iteration=iteration)
    click.echo(f"Imported DaCapo run as '{stored}' (checkpoint of iteration {iteration}) in "
               f"{file_store.run_dir(stored)}.")


def _zarr_path(value: str, name: str) -> tuple[Path, str]:
    """Split ``container.zarr/path/in/it`` at its last ``.zarr`` component."""
    from napari_dacapo.blockwise import split_zarr_path

    try:
        return split_zarr_path(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=name) from e


def _roi(value: str | None):
    """``OFFSET:SHAPE`` (comma-separated world units) as a Roi."""
    if value is None:
        return None
    from funlib.geometry import Roi

    try:
        offset, shape = ([int(v) for v in part.split(",")] for part in value.split(":"))
    except ValueError as e:
        raise click.BadParameter(
            f"'{value}' is not OFFSET:SHAPE; give comma-separated world units, e.g. "
            f"0,0,0:100,512,512.", param_hint="--roi",
        ) from e
    if len(offset) != len(shape):
        raise click.BadParameter(
            f"'{value}' gives {len(offset)} offset value(s) but {len(shape)} shape value(s); "
            f"give one of each per spatial axis, e.g. 0,0,0:100,512,512.", param_hint="--roi",
        )
    if any(s <= 0 for s in shape):
        raise click.BadParameter(
            f"'{value}' has a shape of zero or less; SHAPE is the region's size (world "
            f"units, not its end), at least one voxel per axis, e.g. 0,0:256,256.",
            param_hint="--roi",
        )
    return Roi(offset, shape)


def _numbers(value: str | None, option: str, what: str = "whole numbers",
             positive: bool = False) -> tuple[int, ...] | None:
    """Comma-separated whole numbers, e.g. ``64,256,256`` (all positive with
    ``positive``)."""
    if value is None:
        return None
    try:
        numbers = tuple(int(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if not numbers or (positive and min(numbers) < 1):
        raise click.BadParameter(
            f"'{value}' is not a comma-separated list of {what}, one per spatial axis, "
            f"e.g. {'64,256,256' if positive else '0,128,128'}.", param_hint=option,
        )
    return numbers


def _input_config(in_file: Path, in_dataset: str, geometry: dict):
    """INPUT as a ZarrArrayConfig, with --voxel-size and --offset (``geometry``) in place of
    what its attributes say, each checked to give one value per spatial axis."""
    from funlib.geometry import Coordinate

    from napari_dacapo.experiments.datasplits.datasets.arrays.zarr_array_config import (
        ZarrArrayConfig,
    )

    raw = ZarrArrayConfig(name="input", file_name=in_file, dataset=in_dataset)
    given = {key: value for key, value in geometry.items() if value is not None}
    if not given:
        return raw
    array = raw.array()
    spatial = array.axis_names[array.channel_dims:]
    for key, value in given.items():
        if len(value) != len(spatial):
            raise click.BadParameter(
                f"{len(value)} value(s) given, but INPUT has {len(spatial)} spatial axes "
                f"({', '.join(spatial)}); give one per axis, comma-separated.",
                param_hint="--" + key.replace("_", "-"),
            )
    return raw.replace(**{key: Coordinate(value) for key, value in given.items()})


def _segmentation_parameters(run_name, criterion, store):
    from napari_dacapo.blockwise.segmentation import segmentation_parameters
    from napari_dacapo.checkpoints import load_run
    from napari_dacapo.store.file_store import FileStore

    run, file_store = load_run(run_name, FileStore(store))
    return segmentation_parameters(run, criterion, file_store)


def _check_segmentation_output(run_name, prediction_path, labels_path, criterion, workers,
                               worker_command, worker_threads, store) -> None:
    """Refuse, before predicting, a --segment LABELS array that the segmentation after it
    would refuse (another job wrote it), saying how to segment into it alone."""
    import shlex

    from napari_dacapo.blockwise.segmentation import segmentation_conflict
    from napari_dacapo.store.file_store import FileStore

    file_store = FileStore(store)
    with _user_errors():
        conflict = segmentation_conflict(run_name, prediction_path, labels_path,
                                         criterion=criterion, store=file_store)
    if conflict is None:
        return
    labels_file, labels_dataset = _zarr_path(labels_path, "--segment")
    command = ["napari-dacapo", "segment", "--run", run_name]
    command += ["--criterion", criterion] if criterion else []
    command += [prediction_path, labels_path, "--workers", str(workers)]
    command += ["--worker-command", worker_command] if worker_command else []
    command += ["--worker-threads", str(worker_threads)] if worker_threads else []
    if file_store.root != FileStore().root:
        command += ["--store", str(file_store.root)]
    raise click.ClickException(
        f"{labels_file.absolute() / labels_dataset} (--segment) already exists and was not "
        f"written by a segmentation of this prediction ({conflict.why}).{conflict.state} "
        f"Nothing was predicted. To segment the prediction into it anew, run this command "
        f"without --segment, then: {shlex.join(command)} --overwrite. Or give --segment "
        f"another LABELS array. (--overwrite here would predict OUTPUT anew too.)"
    )


def _segment_blockwise(run_name, prediction_path, output_path, criterion, workers, roi,
                       block_shape, worker_command, threads, overwrite, store) -> None:
    from napari_dacapo.blockwise import BlockwiseSegmentationError, segment_blockwise
    from napari_dacapo.blockwise.scheduler import command_line_messages
    from napari_dacapo.store.file_store import FileStore

    with _user_errors(), command_line_messages():
        try:
            written = segment_blockwise(
                run_name, prediction_path, output_path, criterion=criterion, workers=workers,
                roi=roi, block_shape=block_shape, store=FileStore(store),
                worker_command=worker_command, threads=threads, overwrite=overwrite,
                progress=True,
            )
        except BlockwiseSegmentationError as e:
            raise click.ClickException(str(e)) from e
    click.echo(f"Wrote segmentation to {written}")


def _predict_blockwise(run_name, checkpoint, input_config, output_path, workers, roi,
                       worker_command, threads, device, precision, rescale, overwrite,
                       store) -> None:
    from napari_dacapo.blockwise import BlockwisePredictionError, predict_blockwise
    from napari_dacapo.blockwise.scheduler import command_line_messages
    from napari_dacapo.store.file_store import FileStore

    with _user_errors(), command_line_messages():
        try:
            written = predict_blockwise(
                run_name, checkpoint, input_config, output_path, workers=workers, roi=roi,
                store=FileStore(store), device=device, precision=precision,
                worker_command=worker_command, threads=threads, rescale=rescale,
                overwrite=overwrite, progress=True,
            )
        except BlockwisePredictionError as e:
            raise click.ClickException(str(e)) from e
    click.echo(f"Wrote prediction to {written}")


@contextlib.contextmanager
def _stopped_blockwise(checkpoint: str | None, output_path: str) -> Iterator[None]:
    """Stop a blockwise command on Ctrl-C or SIGTERM: the job ends its local workers at
    once (see :mod:`napari_dacapo.blockwise.stopping`; a stop before the workers start
    needs no more), this says how to finish the job, and the command exits with 128 + the
    signal's number, as train does, so that job scripts can requeue it."""
    from napari_dacapo.blockwise.scheduler import recorded_job
    from napari_dacapo.blockwise.stopping import STOP_SIGNALS, JobStopped

    def stop(signum, frame) -> None:
        raise JobStopped(signum)

    previous = {number: signal.signal(number, stop) for number in STOP_SIGNALS}
    try:
        yield
    except KeyboardInterrupt as e:  # JobStopped, or Ctrl-C before the handler was set
        signum = e.signum if isinstance(e, JobStopped) else signal.SIGINT
        for number in STOP_SIGNALS:  # say it once, whatever arrives meanwhile
            signal.signal(number, signal.SIG_IGN)
        hint = ""
        job = recorded_job(*_zarr_path(output_path, "OUTPUT"))
        iteration = getattr(job, "iteration", None)
        if iteration is not None and checkpoint is not None and not checkpoint.isdigit():
            hint = (f" (with --checkpoint {iteration} if the run has trained on since: "
                    f"{checkpoint} then names a later checkpoint)")
        click.echo(
            f"\nStopped ({_signal_name(signum)}): no worker is left running, and the blocks "
            f"written so far are kept. To finish the job, run the same command again{hint}.",
            err=True,
        )
        raise click.exceptions.Exit(128 + signum) from None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def _geometry_said_once(geometry: dict) -> Iterator[None]:
    """Meanwhile, say how INPUT's geometry is read from its attributes once (the input is
    opened several times), with the predict command's options as the fix, and not at all
    where --voxel-size replaces it."""
    from napari_dacapo.experiments.datasplits.datasets.arrays import zarr_array, zarr_metadata

    said: set[str] = set()

    def once(record: logging.LogRecord) -> bool:
        if record.name == zarr_metadata.logger.name and geometry["voxel_size"] is not None:
            return False
        text = record.getMessage().replace(
            "set voxel_size and offset in its ZarrArrayConfig", "give --voxel-size and "
            "--offset")
        record.msg, record.args = text, None
        if text in said:
            return False
        said.add(text)
        return True

    loggers = (zarr_metadata.logger, zarr_array.logger)
    for log in loggers:
        log.addFilter(once)
    try:
        yield
    finally:
        for log in loggers:
            log.removeFilter(once)


def _intensities(value: str) -> bool | str | tuple[float, float]:
    """``--intensities`` as ``predict``'s ``rescale``."""
    from napari_dacapo.predict import OWN_RANGE, rescale_bounds

    modes = {"training": True, "stored": False, OWN_RANGE: OWN_RANGE}
    if value in modes:
        return modes[value]
    try:  # the API's check of a range, said in the CLI's words
        return rescale_bounds(value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a mode: give training, {OWN_RANGE}, stored, or LOW,HIGH: two "
            f"finite numbers, LOW below HIGH (e.g. 100,4000).", param_hint="--intensities",
        ) from None


def _measured_range(run, raw, rescale, store):
    """``rescale`` with the range of the input ``raw`` (a ZarrArrayConfig) measured (and
    said) once, before predicting; any other ``rescale`` as it is."""
    from napari_dacapo.checkpoints import load_run
    from napari_dacapo.predict import OWN_RANGE, image_intensity_range
    from napari_dacapo.store.file_store import FileStore

    if rescale != OWN_RANGE:
        return rescale
    with _user_errors():
        run, _ = load_run(run, store if isinstance(store, FileStore) else FileStore(store))
        measured = image_intensity_range(run, raw)
    click.echo(f"{measured.describe()[:-1]} of {raw.file_name}/{raw.dataset}.", err=True)
    return measured.low, measured.high


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Show the library's errors about the user's input as a message, not a traceback."""
    from napari_dacapo.experiments.starts.start import StartError
    from napari_dacapo.store.file_store import StoreError

    try:
        yield
    except (ValueError, TypeError, OSError, StoreError, StartError) as e:
        raise click.ClickException(str(e)) from e


#: The signals that stop training after the current iteration, with a checkpoint: Ctrl-C,
#: and SIGTERM, which batch systems (SLURM, LSF) send at a job's time limit or preemption.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: A SIGTERM this soon after the first stop signal is the same request, not a user who
#: insists: SLURM signals every process of a job, and srun forwards what it gets to its
#: tasks, so one time limit can arrive twice at once.
_SAME_SIGTERM_S = 2.0


def _train(run_config, file_store, device, validate: bool, train_until=None) -> None:
    """Train with a progress bar. A stop signal (:data:`_STOP_SIGNALS`) ends training after
    the current iteration, with a checkpoint, and exits with 128 + the signal's number (as
    a shell reports a process ended by it), so that job scripts can tell a stopped run from
    a finished one; a second signal aborts at once."""
    from tqdm import tqdm

    from napari_dacapo.experiments.run import Run
    from napari_dacapo.train import (
        CheckpointSaved,
        IterationDone,
        RunFinished,
        RunStarted,
        RunStopped,
        ValidationDone,
        ValidationSkipped,
        train_run,
    )

    name = run_config.name
    if _complete(run_config, file_store, train_until):
        return
    stop = threading.Event()
    received: list[int] = []  # the stop signals, in order
    trainer = os.getpid()
    stopping_since = 0.0

    def request_stop(signum, frame) -> None:
        nonlocal stopping_since
        if os.getpid() != trainer:
            # A forked batch worker, signalled with its job (SLURM signals every process):
            # the trainer stops it once the checkpoint is saved.
            return
        if stop.is_set():
            if (signum == signal.SIGTERM
                    and time.monotonic() - stopping_since < _SAME_SIGTERM_S):
                return
            received.append(signum)
            raise KeyboardInterrupt  # asked again: the user insists
        received.append(signum)
        stopping_since = time.monotonic()
        if signum == signal.SIGINT:
            click.echo("\nStopping after this iteration (a checkpoint is saved); "
                       "press Ctrl-C again to abort.", err=True)
        else:
            click.echo(f"\n{_signal_name(signum)} received: stopping after this iteration (a "
                       f"checkpoint is saved); a second one aborts at once.", err=True)
        stop.set()

    previous = {number: signal.signal(number, request_stop) for number in _STOP_SIGNALS}
    bar = None
    goal = stopped = None
    try:
        with _user_errors():
            run = Run(run_config, store=file_store)
            if train_until is not None:
                run.train_until = train_until
            for event in train_run(run, store=file_store, stop=stop, device=device,
                                   validate=validate):
                match event:
                    case RunStarted():
                        goal = event.train_until
                        click.echo(f"Training '{event.run}' on {event.device} from iteration "
                                   f"{event.start_iteration} to {event.train_until}")
                        bar = tqdm(total=event.train_until, initial=event.start_iteration,
                                   unit="it", dynamic_ncols=True, file=sys.stderr)
                    case IterationDone():
                        bar.update(1)
                        bar.set_postfix(loss=f"{event.loss:.4f}", refresh=False)
                    case CheckpointSaved():
                        bar.write(f"checkpoint saved at iteration {event.iteration}")
                    case ValidationDone():
                        summary = ", ".join(f"{c}={v:.3f} (it {i})"
                                            for c, (i, v) in list(event.best.items())[:4])
                        bar.write(f"validated iteration {event.iteration}; best: {summary}")
                    case ValidationSkipped():
                        bar.write(f"validation skipped at {event.iteration}: {event.reason}")
                    case RunStopped():
                        bar.write(f"stopped at iteration {event.iteration}")
                        stopped = event.iteration
                    case RunFinished():
                        pass
    except KeyboardInterrupt:
        if not received:
            raise
        latest = file_store.latest_iteration(name)
        where = ("from iteration 0" if latest is None
                 else f"from its latest checkpoint (iteration {latest})")
        click.echo(f"\nAborted by a second signal ({_signal_name(received[-1])}). To train "
                   f"the run on {where}, run: {_train_command(name, file_store, train_until)}",
                   err=True)
        raise click.exceptions.Exit(128 + received[-1]) from None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if bar is not None:
            bar.close()
    if stopped is not None:
        click.echo(
            f"Run '{name}' stopped at iteration {stopped} of {goal} "
            f"({_signal_name(received[0])}); stored in {file_store.run_dir(name)}. To "
            f"continue it, run: {_train_command(name, file_store, train_until)}"
        )
        raise click.exceptions.Exit(128 + received[0])
    click.echo(f"Run '{name}' stored in {file_store.run_dir(name)}")


def _signal_name(number: int) -> str:
    return "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name


def _complete(run_config, file_store, train_until) -> bool:
    """Whether the stored run of ``run_config`` has trained as far as asked already; if so
    say so, and how to train it further (nothing is written)."""
    name = run_config.name
    if not file_store.has_run(name):
        return False
    with _user_errors():  # another config under this name is refused, as training would
        file_store.check_run_config(run_config)
    done = file_store.latest_iteration(name)
    if done is None or done < (train_until or run_config.num_iterations):
        return False
    click.echo(
        f"Run '{name}' is complete at iteration {done} (stored in {file_store.run_dir(name)}). "
        f"To train it further, run: {_train_command(name, file_store)} --iterations M, with M "
        f"above {done}."
    )
    return True


def _train_command(name: str, file_store, iterations: int | None = None) -> str:
    """The command that trains the stored run ``name`` (``--store`` only when it is not the
    default store)."""
    import shlex

    from napari_dacapo.store.file_store import FileStore

    command = f"napari-dacapo train --run {shlex.quote(name)}"
    if iterations is not None:
        command += f" --iterations {iterations}"
    if file_store.root != FileStore().root:
        command += f" --store {shlex.quote(str(file_store.root))}"
    return command


if __name__ == "__main__":
    main()
