#!/usr/bin/env bash
# README's screenshot of the micro-sam Prompt Tool in use (docs/prompt-tool.png): ImageJ with its main window
# under Xvfb, the plugin as install-fiji installs it, APG on the demo image, the tool on the toolbar, then the
# prompt the tool's click runs (the tool records makePoint + run("micro-sam Prompt")), Show All, ImageJ's own
# Capture Screen.   bash docs/make_screenshots.sh   (from the repository root, after bash .ci/install)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/ImageJ/plugins"
.venv/bin/microsam-fiji install-fiji "$root/ImageJ" >/dev/null
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
