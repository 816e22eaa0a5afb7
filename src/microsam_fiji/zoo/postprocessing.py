"""The ImageJ macro a package carries so that deepImageJ / ImageJ users get instances, not maps: micro-sam's
AIS recipe (torch_em's ``watershed_from_center_and_boundary_distances``) in ImageJ 1.x's macro language, with the
package's AIS thresholds written into it. deepImageJ finds it under ``config.deepimagej`` (``ij.IJ::runMacroFile``
as postprocessing, as spec 0.4 packages declare it)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

MACRO_FILE = "instance_maps_to_labels.ijm"

# Seeds: foreground > t_fg, smoothed center distance < t_c and boundary distance < t_b, 8-connected components
# (as skimage.measure.label in torch_em). Watershed: a bucket-queue flood of the seeds over the smoothed boundary
# distances inside the foreground mask (ImageJ 1.x has no marker watershed; 256 levels, 4-neighbours).
# Headless: ImageJ 1.53t builds its menu bar (AWT: a HeadlessException without a display) before open() or any
# run("..."), and its filters open their dialogs when not called through run(); so the macro reads the TIFF with
# ij.plugin.FileInfoVirtualStack (called by class name, no dialog) and blurs and labels in its own code, the way
# torch_em does (the same Gaussian as vigra's, the same components as skimage's label).
MACRO = r"""// micro-sam instance maps -> instance labels (micro-sam's AIS recipe), written by microsam-fiji export.
// Input: the package's output, 3 slices or channels: foreground, center_distances, boundary_distances.
// Use: as deepImageJ postprocessing (the output image is the current one), or with or without a display:
//   java -jar ij.jar -batch instance_maps_to_labels.ijm "maps.tif labels.tif"  (TIFF paths without spaces)
// Runs headless too (ImageJ 1.x's open() and run("...") need a display: it uses neither, nor any dialog).
// Output: a 32-bit label image "labels" (0 = background), saved as TIFF when a second path is given.
T_FG = %(foreground_threshold)s; T_C = %(center_distance_threshold)s; T_B = %(boundary_distance_threshold)s;
S_FG = %(foreground_smoothing)s; S_D = %(distance_smoothing)s; MIN_SIZE = %(min_size)s;
var w, h, n, head, tail, nxt, lab, mask, bd, cur, LEVELS;  // globals: the functions below use them
setBatchMode(true);
args = split(getArgument(), " ");
if (args.length > 0) { if (args[0] != "") openTiff(args[0]); }  // && evaluates both sides: args[0] may not exist
if (nImages == 0) exit("micro-sam maps: no image: pass the maps TIFF (and the labels TIFF to write) as the argument");
maps = getImageID(); w = getWidth(); h = getHeight(); n = w * h;
if (nSlices < 3) exit("micro-sam maps: expected 3 slices or channels (foreground, center, boundary distances)");
fg = plane(maps, 1, S_FG); cd = plane(maps, 2, S_D); bd = plane(maps, 3, S_D);
seeds = newArray(n); mask = newArray(n);
for (i = 0; i < n; i++) {
  if (fg[i] > T_FG) {
    mask[i] = 1;
    if (cd[i] < T_C && bd[i] < T_B) seeds[i] = 1;
  }
}
// 8-connected components of the seeds, numbered in row-major order of their first pixel
lab = newArray(n); stack = newArray(n); m = 0;
for (i = 0; i < n; i++) {
  if (seeds[i] == 1 && lab[i] == 0) {
    m++; lab[i] = m; stack[0] = i; top = 1;
    while (top > 0) {
      top--; p = stack[top]; px = p %% w; py = floor(p / w);
      for (yy = maxOf(0, py - 1); yy <= minOf(h - 1, py + 1); yy++) {
        for (xx = maxOf(0, px - 1); xx <= minOf(w - 1, px + 1); xx++) {
          q = yy * w + xx;
          if (seeds[q] == 1 && lab[q] == 0) { lab[q] = m; stack[top] = q; top++; }
        }
      }
    }
  }
}
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

function openTiff(path) {
  // open() would build ImageJ's menus, which fails without a display: the TIFF reader, called by class name
  if (!File.exists(path)) exit("micro-sam maps: '" + path + "' not found: pass the maps TIFF's path (no spaces)");
  magic = File.openAsRawString(path, 4);
  if (!startsWith(magic, "II") && !startsWith(magic, "MM"))
    exit("micro-sam maps: '" + path + "' is not a TIFF: save the maps as TIFF");
  opened = call("ij.IJ.runPlugIn", "ij.plugin.FileInfoVirtualStack", path);  // its value is the image
  if (nImages == 0) exit("micro-sam maps: ImageJ cannot read the TIFF '" + path + "'");
}
function plane(id, k, sigma) {
  selectImage(id); setSlice(k);
  values = newArray(n);
  for (j = 0; j < n; j++) values[j] = getPixel(j %% w, floor(j / w));
  if (sigma > 0) values = blur(values, sigma);
  return values;
}
function blur(v, sigma) {
  // separable Gaussian as torch_em's (vigra's): radius round(3 sigma), mirrored border (-1 -> 1)
  r = floor(3 * sigma + 0.5); kernel = newArray(2 * r + 1); total = 0;
  for (d = -r; d <= r; d++) { kernel[d + r] = exp(-d * d / (2 * sigma * sigma)); total += kernel[d + r]; }
  for (d = 0; d < kernel.length; d++) kernel[d] = kernel[d] / total;
  rows = newArray(n); out = newArray(n);
  for (y = 0; y < h; y++) {
    for (x = 0; x < w; x++) {
      acc = 0;
      for (d = -r; d <= r; d++) {
        xx = abs(x + d); if (xx >= w) xx = 2 * w - 2 - xx;
        acc += kernel[d + r] * v[y * w + xx];
      }
      rows[y * w + x] = acc;
    }
  }
  for (y = 0; y < h; y++) {
    for (x = 0; x < w; x++) {
      acc = 0;
      for (d = -r; d <= r; d++) {
        yy = abs(y + d); if (yy >= h) yy = 2 * h - 2 - yy;
        acc += kernel[d + r] * rows[yy * w + x];
      }
      out[y * w + x] = acc;
    }
  }
  return out;
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
