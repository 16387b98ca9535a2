"""petseg: binary pet segmentation on Oxford-IIIT Pet, UNet vs ResNet34-UNet, as a DVC pipeline.

`petseg.cli` runs the commands; `petseg.stages` are the pipeline's stages; the library they call is split by phase
(`core`, `data`, `models`, `training`, `inference`); `petseg.tools` are the commands no stage runs. The version is the installed distribution's (pyproject.toml).
"""
