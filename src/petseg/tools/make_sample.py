"""`petseg make-sample`: the embedded sample archives (data/sample) from a folder in the official layout."""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
from collections import defaultdict
from pathlib import Path

from PIL import Image

from petseg.core.io import atomic_path
from petseg.data.archives import md5sum
from petseg.data.splits import read_split_list

HELP = "build data/sample archives from a folder in the official layout"
PARAMS = "never"
MTIME = 1_700_000_000  # fixed member time: the same input gives byte-identical archives


def shrink_pair(image_path: Path, trimap_path: Path, max_side: int, quality: int) -> tuple[bytes, bytes]:
    """Re-encode a JPEG photo at most `max_side` px and its trimap to match (nearest).

    A pair already that small, and anything that is not really a JPEG (the PNG and GIF quirk files), is kept
    byte for byte: no second JPEG generation.
    """
    image_bytes, trimap_bytes = image_path.read_bytes(), trimap_path.read_bytes()
    with Image.open(io.BytesIO(image_bytes)) as image:
        scale = max_side / max(image.size)
        if image.format != "JPEG" or scale >= 1:
            return image_bytes, trimap_bytes
        size = (round(image.width * scale), round(image.height * scale))
        out = io.BytesIO()
        image.convert("RGB").resize(size, Image.Resampling.BILINEAR).save(out, "JPEG", quality=quality)
    with Image.open(io.BytesIO(trimap_bytes)) as trimap:
        trimap_out = io.BytesIO()
        trimap.resize(size, Image.Resampling.NEAREST).save(trimap_out, "PNG", optimize=True)
    return out.getvalue(), trimap_out.getvalue()


def write_tar_gz(path: Path, members: dict[str, bytes]) -> None:
    """A reproducible .tar.gz: sorted members, fixed times and owners, no gzip timestamp."""
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(members):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(members[name]), MTIME, 0o644
                tar.addfile(info, io.BytesIO(members[name]))


def stratified_stems(src: Path, trainval_per_breed: int, test_per_breed: int, seed: int,
                     keep: list[str] = ()) -> list[str]:
    """Up to that many stems of each breed from each official list (the split kept), drawn with `seed`.

    The stems in `keep` are taken first, in whatever list they are (or in none).
    """
    from petseg.data.breeds import pet_breeds
    rng, picked = random.Random(seed), set(keep)
    for name, per_breed in (("trainval.txt", trainval_per_breed), ("test.txt", test_per_breed)):
        stems = read_split_list(src / "annotations" / name)
        by_breed = defaultdict(list)
        for stem, (breed, _) in sorted(pet_breeds(stems, src / "annotations" / "list.txt").items()):
            by_breed[breed].append(stem)
        for breed, members in sorted(by_breed.items()):
            kept = [stem for stem in members if stem in picked]
            rest = [stem for stem in members if stem not in picked]
            picked.update(rng.sample(rest, max(0, min(len(rest), per_breed - len(kept)))))
    return sorted(picked)


def make_sample(src: Path, out: Path, max_side: int, quality: int, stems: list[str] | None = None) -> dict:
    """Write images.tar.gz and annotations.tar.gz under `out`; returns {name: {size, md5}}.

    `stems` limits the sample to those pairs (and the list files to those lines), for tiny test data.
    """
    src, out = Path(src), Path(out)
    available = sorted(p.stem for p in (src / "images").glob("*.jpg"))
    keep = set(available if stems is None else stems)
    images, annotations = {}, {}
    for stem in sorted(keep):
        photo, trimap = shrink_pair(src / "images" / f"{stem}.jpg",
                                    src / "annotations" / "trimaps" / f"{stem}.png", max_side, quality)
        images[f"images/{stem}.jpg"] = photo
        annotations[f"annotations/trimaps/{stem}.png"] = trimap
    for name in ("list.txt", "trainval.txt", "test.txt"):
        lines = (src / "annotations" / name).read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.startswith("#") or line.split()[:1] and line.split()[0] in keep]
        annotations[f"annotations/{name}"] = "".join(kept).encode()
    write_tar_gz(out / "images.tar.gz", images)
    write_tar_gz(out / "annotations.tar.gz", annotations)
    return {name: {"size": (out / name).stat().st_size, "md5": md5sum(out / name)}
            for name in ("images.tar.gz", "annotations.tar.gz")}


def run(args, params) -> str:
    keep = read_split_list(args.keep) if args.keep else []
    stems = stratified_stems(args.src, args.trainval_per_breed, args.test_per_breed, args.seed, keep)
    checksums = make_sample(args.src, args.out, args.max_side, args.quality, stems)
    print(json.dumps(checksums, indent=2))
    return f"wrote {args.out}/images.tar.gz and annotations.tar.gz; put the checksums in params.yaml data.archives.sample"


def add_arguments(p) -> None:
    p.path("--src", None, "a folder in the official layout, e.g. a copy of oxford-pets-160", required=True)
    p.path("--out", "data/sample", "folder for the two archives")
    p.add_argument("--trainval-per-breed", type=int, default=10, help="stems per breed from trainval.txt "
                   "(default: %(default)s)")
    p.add_argument("--test-per-breed", type=int, default=8, help="stems per breed from test.txt (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="seed of the draw (default: %(default)s)")
    p.add_argument("--keep", type=Path, help="a file of stems taken first, one per line, '#' comments "
                   "(the shipped sample: data/sample/keep.txt)")
    p.add_argument("--max-side", type=int, default=160, help="larger photos are shrunk to this longer side "
                   "(default: %(default)s)")
    p.add_argument("--quality", type=int, default=75, help="JPEG quality of shrunk photos (default: %(default)s)")
