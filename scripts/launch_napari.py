"""`make run` on a desktop: napari with the DaCapo training panel docked and the 2D sample
(blobs with labels) loaded, so the first training is one click away."""

import napari


def main() -> None:
    viewer = napari.Viewer(title="napari-dacapo")
    viewer.open_sample("napari-dacapo", "blobs_2d")
    viewer.window.add_plugin_dock_widget("napari-dacapo", "DaCapo training")
    napari.run()


if __name__ == "__main__":
    main()
