"""Stage `download`: the photos and trimaps in the official layout, in data/raw.

From the sample archives shipped in data/sample, the official archives (downloaded, or placed by hand),
or a local folder (data.source), each checked before anything is replaced.
"""

from __future__ import annotations

import sys
from pathlib import Path

HELP = "get and verify the archives (data.source), or copy a local folder (data.folder), in the official layout"
PARAMS = "required"


def run(args, params) -> str:
    from petseg.data.archives import copy_folder, ensure_archives, extract
    data = params.data
    if data.source == "folder":
        folder = Path(data.folder).expanduser()
        counts, done = copy_folder(folder, args.out), f"checked and copied {folder} to {args.out}"
    else:
        checksums = getattr(data.archives, data.source).model_dump(by_alias=True)
        if data.source == "sample":
            archives = ensure_archives(args.sample_dir, checksums)
        else:
            archives = ensure_archives(args.archives, checksums, data.url, data.retries, data.timeout)
        counts = extract(archives, args.out)
        done = f"verified and extracted {', '.join(map(str, archives.values()))} to {args.out}"
    print(f"{args.out}: " + ", ".join(f"{key} {value}" for key, value in counts.items()), file=sys.stderr)
    return done


def add_arguments(p) -> None:
    p.path("--out", "data/raw", "where to extract")
    p.path("--sample-dir", "data/sample", "the shipped sample archives")
    p.path("--archives", "data/archives", "where the full archives are downloaded, or placed by hand")
