"""The ImageJ macro a package carries so that deepImageJ / ImageJ users get instances, not maps: micro-sam's
AIS recipe (torch_em's ``watershed_from_center_and_boundary_distances``) in ImageJ 1.x's macro language, with the
package's AIS thresholds written into it. deepImageJ finds it under ``config.deepimagej`` (``ij.IJ::runMacroFile``
as postprocessing, as spec 0.4 packages declare it)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

MACRO_FILE = "instance_maps_to_labels.ijm"

# Seeds: foreground > t_fg, smoothed center distance < t_c and boundary distance < t_b, 8-connected components
# (ImageJ's Analyze Particles). Watershed: a bucket-queue flood of the seeds over the smoothed boundary
# distances inside the foreground mask (ImageJ 1.x has no marker watershed; 256 levels, 4-neighbours).
MACRO = r"""// micro-sam instance maps -> instance labels (micro-sam's AIS recipe), written by microsam-fiji export.
// Input: the package's output, 3 slices or channels: foreground, center_distances, boundary_distances.
// Use: as deepImageJ postprocessing (the output image is the current one), or
//   ImageJ -batch instance_maps_to_labels.ijm "maps.tif labels.tif"  (both paths without spaces).
// Output: a 32-bit label image "labels" (0 = background), saved as TIFF when a second path is given.
T_FG = %(foreground_threshold)s; T_C = %(center_distance_threshold)s; T_B = %(boundary_distance_threshold)s;
S_FG = %(foreground_smoothing)s; S_D = %(distance_smoothing)s; MIN_SIZE = %(min_size)s;
var head, tail, nxt, lab, mask, bd, cur, LEVELS;  // globals: the functions below use them
setBatchMode(true);
args = split(getArgument(), " ");
if (args.length > 0 && args[0] != "") open(args[0]);
maps = getTitle(); w = getWidth(); h = getHeight(); n = w * h;
if (nSlices < 3) exit("micro-sam maps: expected 3 slices or channels (foreground, center, boundary distances)");
fg = plane(maps, 1, S_FG); cd = plane(maps, 2, S_D); bd = plane(maps, 3, S_D);
seeds = newArray(n); mask = newArray(n);
for (i = 0; i < n; i++) {
  if (fg[i] > T_FG) {
    mask[i] = 1;
    if (cd[i] < T_C && bd[i] < T_B) seeds[i] = 255;
  }
}
newImage("seeds", "8-bit black", w, h, 1);
for (i = 0; i < n; i++) setPixel(i %% w, floor(i / w), seeds[i]);
setThreshold(255, 255);
run("Analyze Particles...", "size=0-Infinity pixel show=[Count Masks] clear");
lab = newArray(n);
for (i = 0; i < n; i++) lab[i] = getPixel(i %% w, floor(i / w));
close(); selectWindow("seeds"); close();
// bucket queue: head/tail per level, next[] chains pixel indices; each pixel enters once (labelled on entry)
LEVELS = 256; head = newArray(LEVELS); tail = newArray(LEVELS); nxt = newArray(n);
Array.fill(head, -1); Array.fill(tail, -1); Array.fill(nxt, -1);
for (i = 0; i < n; i++) if (lab[i] > 0) push(i, level(bd[i]));
cur = 0;
while (cur < LEVELS) {
  i = head[cur];
  if (i < 0) { cur++; continue; }
  head[cur] = nxt[i]; if (head[cur] < 0) tail[cur] = -1;
  x = i %% w; y = floor(i / w);
  if (x > 0) grow(i - 1, lab[i]);
  if (x < w - 1) grow(i + 1, lab[i]);
  if (y > 0) grow(i - w, lab[i]);
  if (y < h - 1) grow(i + w, lab[i]);
}
if (MIN_SIZE > 0) {
  m = 0; for (i = 0; i < n; i++) if (lab[i] > m) m = lab[i];
  size = newArray(m + 1);
  for (i = 0; i < n; i++) size[lab[i]]++;
  for (i = 0; i < n; i++) if (size[lab[i]] < MIN_SIZE) lab[i] = 0;
}
newImage("labels", "32-bit black", w, h, 1);
for (i = 0; i < n; i++) setPixel(i %% w, floor(i / w), lab[i]);
resetMinAndMax();
if (args.length > 1) saveAs("Tiff", args[1]);
setBatchMode("exit and display");

function plane(title, k, sigma) {
  selectWindow(title); setSlice(k);
  run("Duplicate...", "title=plane"); run("32-bit");
  if (sigma > 0) run("Gaussian Blur...", "sigma=" + sigma);
  values = newArray(getWidth() * getHeight());
  for (j = 0; j < values.length; j++) values[j] = getPixel(j %% getWidth(), floor(j / getWidth()));
  close(); selectWindow(title);
  return values;
}
function level(v) { return minOf(LEVELS - 1, maxOf(0, floor(v * (LEVELS - 1)))); }
function push(j, k) {
  if (tail[k] < 0) head[k] = j; else nxt[tail[k]] = j;
  tail[k] = j; nxt[j] = -1;
}
function grow(j, value) {
  if (lab[j] == 0 && mask[j]) { lab[j] = value; push(j, maxOf(cur, level(bd[j]))); }
}
"""


def macro_text(ais: Mapping) -> str:
    """The macro with the package's AIS parameters (``config.micro_sam.ais``) as its thresholds."""
    keys = ("foreground_threshold", "center_distance_threshold", "boundary_distance_threshold",
            "foreground_smoothing", "distance_smoothing", "min_size")
    return MACRO % {key: float(ais[key]) if key != "min_size" else int(ais[key]) for key in keys}


def write_macro(folder: Path, config: Mapping) -> Path:
    """Write the macro for ``config`` (``config.micro_sam`` as exported) into ``folder``; returns its path."""
    path = folder / MACRO_FILE
    path.write_text(macro_text(config["ais"]))
    return path


def deepimagej_config() -> dict:
    """``config.deepimagej``: the macro as postprocessing, the way deepImageJ runs ImageJ macros."""
    return {"prediction": {"postprocess": [{"spec": "ij.IJ::runMacroFile", "kwargs": MACRO_FILE}]}}
