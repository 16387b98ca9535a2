"""`petseg plots-template`: an HTML template for `dvc plots show/diff` that works offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN and shows nothing without
internet. This template inlines the bundle that the installed vl-convert-python package ships
(nothing third-party is committed: `make setup` writes it under .dvc/plots/, ignored by git).
"""

from __future__ import annotations

from pathlib import Path

from petseg.core.io import atomic_path

HELP = "write the offline HTML template for dvc plots"
PARAMS = "never"

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>petseg plots</title>
<script>
{bundle}
</script>
<script>
// SVG rather than canvas: marks stay in the DOM (searchable, testable, crisp when zoomed)
(function () {{
  const embed = window.vegaEmbed;
  window.vegaEmbed = (el, spec, opts) => embed(el, spec, Object.assign({{renderer: "svg"}}, opts || {{}}));
}})();
</script>
<style>
  body {{ font-family: sans-serif; }}
  table {{ border-spacing: 15px; }}
</style>
</head>
<body>
{{plot_divs}}
</body>
</html>
"""


def write_template(path: Path) -> None:
    import vl_convert

    with atomic_path(path) as tmp:
        tmp.write_text(PAGE.format(bundle=vl_convert.javascript_bundle()), encoding="utf8")


def run(args, params) -> str:
    write_template(args.out)
    return f"wrote {args.out} (dvc plots show/diff render offline with it)"


def add_arguments(p) -> None:
    p.path("--out", ".dvc/plots/offline.html", "the template file")
