"""Breeds and species of the photos, from the official list.txt."""

from __future__ import annotations

from pathlib import Path

SPECIES = {"1": "cat", "2": "dog"}  # the SPECIES column of list.txt


def pet_breeds(stems: list[str], list_file: Path | None) -> dict[str, tuple[str, str]]:
    """Each stem's (breed, species), from the official list.txt (`Stem CLASS-ID SPECIES BREED-ID` lines).

    A breed is a class id, named after its stems (`Great_Pyrenees_12` -> `Great_Pyrenees`). A stem that
    list.txt does not hold is named by itself, and is a cat when it starts with a capital (the list's own rule).
    """
    listed = {}
    if list_file is not None and Path(list_file).is_file():
        for line in Path(list_file).read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and not line.startswith("#"):
                listed[fields[0]] = (fields[1], SPECIES.get(fields[2], fields[2]))
    names = {}
    for stem in sorted(listed):  # the class's name: that of its first stem
        names.setdefault(listed[stem][0], stem.rsplit("_", 1)[0])
    out = {}
    for stem in stems:
        if stem in listed:
            out[stem] = (names[listed[stem][0]], listed[stem][1])
        else:
            out[stem] = (stem.rsplit("_", 1)[0], "cat" if stem[:1].isupper() else "dog")
    return out

