"""The largest input petseg takes, in one place: each bound is checked before the memory it guards is
allocated, so a small file that declares something huge is refused in one line instead of filling memory.

Torch-, pydantic- and PyYAML-free: `petseg predict` with an ONNX model uses these too. docs/troubleshooting.md
states them for users; params.yaml's own bounds (preprocess.max_pixels and the rest) stay within them.
"""

from __future__ import annotations

# Photos. Decoding takes 3 bytes a pixel, predict's full-size mask and overlay about 10 more, so a photo at
# this limit needs about 2.5 GB; a 200-megapixel phone photo still fits. Pillow's own bomb limit (89 MP
# warns, 179 MP refuses) is replaced by this one, the same for every file whatever the order they are read.
MAX_PHOTO_PIXELS = 200_000_000
# Photos more elongated than this are skipped by predict: up to MAX_SQUASH (petseg.inference.settings) a photo
# is squashed to the square training size, beyond that it keeps its aspect, so the model's input grows with the
# aspect (image_size x image_size x aspect); a 1x5000 line would become a 64 x 320000 input. At 32:1 a model of
# the largest training size takes a 1024 x 32768 input; a panorama of 30:1 still works.
MAX_ASPECT = 32

# Models. The training size a model file may name (the models' input is image_size squared per photo).
MAX_IMAGE_SIZE = 1024
# Parameters a checkpoint's architecture may have, counted on the meta device before anything is allocated:
# UNet with base_channels 128 has 124 million (500 MB); the shipped models have 2 and 25 million.
MAX_MODEL_PARAMETERS = 150_000_000
# Uncompressed bytes of a checkpoint's zip, read from its directory before torch.load inflates anything:
# the largest model's weights (600 MB) and their record, with room to spare.
MAX_CHECKPOINT_BYTES = 1 << 30
# Photos per batch (predict --batch-size, evaluate.batch_size, train.batch_size): the batch's memory grows with it.
MAX_BATCH_SIZE = 4096

# params.yaml and profiles: far above any real one (params.yaml is about 5 KB, 3 levels deep); bounds what
# the YAML parser builds. Aliases (*name) are refused: they can expand exponentially (a "billion laughs").
MAX_PARAMS_BYTES = 1 << 20
MAX_YAML_DEPTH = 16

# Archives: the official two hold 800 MB and 22,000 files once extracted; a member list or sizes beyond these
# (a tar bomb) are refused before anything is extracted.
MAX_ARCHIVE_BYTES = 16 << 30
MAX_ARCHIVE_MEMBERS = 200_000
