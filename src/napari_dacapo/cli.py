"""The headless face: ``napari-dacapo train | runs | example``.

A thin layer over the operations: it builds a Run, consumes :func:`train_run`'s events
and turns them into a progress bar and log lines.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
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


@click.group()
@click.version_option(__version__, prog_name="napari-dacapo")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """Train, validate and apply DaCapo segmentation models."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--run", "run_name", default=None, help="Continue a stored run by name.")
@click.option(
    "--iterations", type=click.IntRange(min=1), default=None,
    help="Train until this many iterations (continue a stored run for longer).",
)
@click.option("--device", default=None, help="Device to train on: cpu, cuda, cuda:1, mps.")
@click.option("--no-validate", is_flag=True, help="Skip validation.")
@store_option
def train(config, run_name, iterations, device, no_validate, store) -> None:
    """Train the run described by CONFIG (a YAML file; DaCapo's run YAML works too), or
    continue the stored run given by --run."""
    from napari_dacapo.experiments.configs import load_config
    from napari_dacapo.store.file_store import FileStore

    file_store = FileStore(store)
    if (config is None) == (run_name is None):
        raise click.UsageError("Give either a CONFIG file or --run NAME.")
    if config is not None:
        ignored: list[str] = []
        run_config = load_config(config, ignored=ignored)
        if ignored:
            click.echo(
                f"Ignored {len(ignored)} field(s) that napari-dacapo does not use: "
                + ", ".join(ignored),
                err=True,
            )
    else:
        if not file_store.has_run(run_name):
            known = ", ".join(file_store.list_runs()) or "none"
            raise click.BadParameter(f"no stored run '{run_name}' (stored: {known})", param_hint="--run")
        run_config = file_store.retrieve_run_config(run_name)
    if iterations is not None:
        run_config = run_config.replace(num_iterations=iterations)
    _train(run_config, file_store, device, validate=not no_validate)


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
    _train(config, file_store, device, validate=True)


@main.command()
@store_option
def runs(store) -> None:
    """List stored runs with their progress."""
    from napari_dacapo.store.file_store import FileStore

    file_store = FileStore(store)
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
        except Exception as e:  # a damaged run folder must not hide the others
            progress = f"unreadable ({e})"
        click.echo(f"  {name}: {progress}")


def _train(run_config, file_store, device, validate: bool) -> None:
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

    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        click.echo("\nStopping after this iteration (a checkpoint is saved); "
                   "press Ctrl-C again to abort.", err=True)
        stop.set()

    previous = signal.signal(signal.SIGINT, request_stop)
    bar = None
    try:
        run = Run(run_config, store=file_store)
        for event in train_run(run, store=file_store, stop=stop, device=device,
                               validate=validate):
            match event:
                case RunStarted():
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
                case RunFinished():
                    pass
    except (ValueError, RuntimeError, OSError) as e:
        if bar is not None:
            bar.close()
        raise click.ClickException(str(e)) from e
    finally:
        signal.signal(signal.SIGINT, previous)
    if bar is not None:
        bar.close()
    click.echo(f"Run '{run_config.name}' stored in {file_store.run_dir(run_config.name)}")


if __name__ == "__main__":
    main()
