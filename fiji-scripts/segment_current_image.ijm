// segment_current_image.ijm - segment the current image with micro-sam APG into the ROI Manager.
//
// Needs the command "micro-sam APG": the plugin (microsam-fiji install-fiji /path/to/Fiji.app, which also copies
// this macro into Fiji.app/macros), or a Fiji started from Python (microsam-fiji fiji --fiji /path/to/Fiji.app).
// Install: copy this file to Fiji.app/macros/ (or Plugins > Macros > Install...), or open it in the macro
// editor (File > Open) and press Run. Open an image first; a dialog asks for the model and the parameters.
// Without that command use segment_with_cli.ijm instead.
//
// From another macro or a script, pass the options as the argument and no dialog opens, e.g.
//     runMacro("/path/to/segment_current_image.ijm", "model=[/path/model.zip] center=0.3 min_size=30 replace");
// The options are those of run("micro-sam APG", ...): model=[...] mode=apg|ais foreground= center= boundary=
// min_size= nms= replace stack rois=[RoiSet.zip] labels=[labels.tif] show. A stack is segmented whole with
// "stack", otherwise its current plane; an area selection restricts the command to it.

options = getArgument();
if (nImages == 0)
    exit("micro-sam APG: no image is open: open the image to segment first");
if (options == "") {
    Dialog.create("micro-sam APG");
    Dialog.addString("Model (empty: demo model)", "", 40);
    Dialog.addMessage("checkpoint (.pt), Model Zoo package (.zip) or micro-sam name, e.g. vit_b_lm");
    Dialog.addChoice("Mode", newArray("apg", "ais"), "apg");
    Dialog.addNumber("Foreground threshold (higher: fewer objects)", 0.5);
    Dialog.addNumber("Center distance threshold (lower: touching objects split)", 0.5);
    Dialog.addNumber("Boundary distance threshold (lower: touching objects split)", 0.5);
    Dialog.addNumber("Minimum size (pixels)", 25);
    Dialog.addNumber("NMS threshold (APG; lower: fewer overlapping objects)", 0.9);
    Dialog.addCheckbox("Replace the ROIs in the ROI Manager", false);
    if (nSlices > 1)
        Dialog.addCheckbox("Stack: process all " + nSlices + " slices (else the current one)", false);
    Dialog.show();
    model = Dialog.getString();
    mode = Dialog.getChoice();
    options = "mode=" + mode + " foreground=" + Dialog.getNumber() + " center=" + Dialog.getNumber()
        + " boundary=" + Dialog.getNumber() + " min_size=" + Dialog.getNumber();
    nms = Dialog.getNumber();
    if (mode == "apg")
        options = options + " nms=" + nms;
    if (model != "")
        options = "model=[" + model + "] " + options;
    if (Dialog.getCheckbox())
        options = options + " replace";
    if (nSlices > 1) {  // the checkbox exists only then (&& does not skip its right side in every ImageJ)
        if (Dialog.getCheckbox())
            options = options + " stack";
    }
}
before = roiManager("count");
run("micro-sam APG", options);
if (!is("Batch Mode"))
    roiManager("Show All");
print("micro-sam APG: " + (roiManager("count") - before) + " objects in " + getTitle());
