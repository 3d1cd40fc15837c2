"""Studies: parameter sweeps over scenario files and reports on their results.

- `grid`: `--grid KEY=V1,V2,...` parsing (values are YAML), the default grid a
  scenario file may carry in `# grid:` comment lines, and the expansion of a
  grid x seeds into validated runs.
- `sweep`: run every point (in worker processes, resumable) into one folder
  with `sweep.json` and `sweep.csv`.
- `tune`: `--tune KEY=V1,V2`: per setting, the value with the best validation
  accuracy (never test accuracy), reported with its test accuracy.
- `report`: Markdown summary and PNG plots of a run or a sweep directory;
  tables over seeds give the mean and its 95% confidence interval.
"""

from parse_actors.studies.grid import GridPoint, expand_grid, file_grid, merge_grids, parse_grid_arg

__all__ = ["GridPoint", "expand_grid", "file_grid", "merge_grids", "parse_grid_arg"]
