#!/usr/bin/env bash
# The docs' screenshots: the micro-sam Prompt Tool in use (docs/prompt-tool.png): ImageJ with its main window
# under Xvfb, the plugin as install-fiji installs it, APG on the demo image, the tool on the toolbar, then the
# prompt the tool's click runs (the tool records makePoint + run("micro-sam Prompt")), Show All, ImageJ's own
# Capture Screen.   bash docs/make_screenshots.sh [prompt-tool|volume]   (from the repository root, after
# bash .ci/install)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/ImageJ/plugins"
.venv/bin/microsam-fiji install-fiji "$root/ImageJ" >/dev/null
which=${1:-all}  # prompt-tool, volume or all
if [ "$which" = all ] || [ "$which" = prompt-tool ]; then
cat > "$root/shot.ijm" <<IJM
open("$PWD/src/microsam_fiji/demo/nuclei-256.tif");
run("Set... ", "zoom=200");
setLocation(40, 110);
run("micro-sam APG", "");
run("micro-sam Prompt Tool");
makePoint(228, 192);
run("micro-sam Prompt");
roiManager("select", roiManager("count") - 1);  // the object the prompt added, drawn apart
roiManager("Set Color", "cyan");
roiManager("Set Line Width", 2);
roiManager("Deselect");
run("From ROI Manager");  // the outlines as the image's overlay, so the ROI Manager window covers nothing
selectWindow("ROI Manager");
run("Close");
makePoint(228, 192);
showStatus("micro-sam Prompt Tool: object added (click: an object, shift-click: a negative point, drag: a box)");
wait(1500);
run("Capture Screen");
saveAs("PNG", "$PWD/docs/prompt-tool-new.png");
IJM
rm -f docs/prompt-tool-new.png
# ImageJ stays open after the macro (its window asks before quitting): stopped once the picture is written
xvfb-run -a -s "-screen 0 1000x680x24" java -Dplugins.dir="$root/ImageJ" -Duser.home="$root" \
  -jar /usr/share/java/ij.jar -macro "$root/shot.ijm" &
ij=$!
for _ in $(seq 240); do [ -s docs/prompt-tool-new.png ] && break; sleep 0.5; done
sleep 1
pkill -P "$ij" java 2>/dev/null || true; kill "$ij" 2>/dev/null || true; wait "$ij" 2>/dev/null || true
mv docs/prompt-tool-new.png docs/prompt-tool.png
echo "wrote docs/prompt-tool.png"
fi

# docs/volume-3d.png: a z-stack segmented in 3D (tests/data/img3d.tif, stardist's 3D nuclei, calibrated 0.5 x 0.5 x
# 2 µm): one object's ROIs on two neighbouring slices (same name, cell-NNNN, on each) and the Results table
# "micro-sam objects" with one row per 3D object
if [ "$which" = all ] || [ "$which" = volume ]; then
cat > "$root/volume.ijm" <<IJM
open("$PWD/tests/data/img3d.tif");
run("Make Substack...", "slices=12-19");  // 8 of its 31 slices: a minute or two on a CPU
run("Properties...", "channels=1 slices=8 frames=1 pixel_width=0.5 pixel_height=0.5 voxel_depth=2 unit=micron");
run("micro-sam APG", "3d");
// the largest object on slices 4 and 5, drawn apart (cyan) on both: one name, one row of the table
best = -1; most = 0;
for (row = 0; row < Table.size("micro-sam objects"); row++) {
    if (Table.get("first_slice", row, "micro-sam objects") <= 4 && Table.get("last_slice", row, "micro-sam objects") >= 5
        && Table.get("voxels", row, "micro-sam objects") > most) {
        most = Table.get("voxels", row, "micro-sam objects");
        best = row;
    }
}
name = Table.getString("name", best, "micro-sam objects");
for (i = 0; i < roiManager("count"); i++) {
    roiManager("select", i);
    if (Roi.getName == name) {
        roiManager("Set Color", "cyan");
        roiManager("Set Line Width", 2);
    }
}
roiManager("Deselect");
run("From ROI Manager");  // every slice's outlines as the overlay (positions kept)
id = getImageID();
for (s = 4; s <= 5; s++) {
    selectImage(id);
    setSlice(s);
    run("Duplicate...", "title=[img3d: slice " + (s + 11) + "] use");
    run("Flatten");
    run("Set... ", "zoom=400");
    setLocation(20 + (s - 4) * 260, 110);
}
showStatus("micro-sam APG 3d: " + name + " (cyan) on slices 15 and 16 is one object: one name, one table row");
selectImage(id);
close();
selectWindow("img3d.tif");
close();
selectWindow("ROI Manager");
run("Close");
selectWindow("micro-sam objects");
setLocation(540, 110);
wait(1500);
run("Capture Screen");
saveAs("PNG", "$PWD/docs/volume-3d-new.png");
IJM
rm -f docs/volume-3d-new.png
xvfb-run -a -s "-screen 0 1280x640x24" java -Dplugins.dir="$root/ImageJ" -Duser.home="$root" \
  -jar /usr/share/java/ij.jar -macro "$root/volume.ijm" &
ij=$!
for _ in $(seq 600); do [ -s docs/volume-3d-new.png ] && break; sleep 0.5; done
sleep 1
pkill -P "$ij" java 2>/dev/null || true; kill "$ij" 2>/dev/null || true; wait "$ij" 2>/dev/null || true
mv docs/volume-3d-new.png docs/volume-3d.png
echo "wrote docs/volume-3d.png"
fi
