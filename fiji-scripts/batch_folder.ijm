// batch_folder.ijm - segment every image of a folder with micro-sam APG: <name>_RoiSet.zip and <name>_labels.tif
// per image in the output folder, progress in the Log window. The ROI Manager keeps what it held before.
//
// Needs Fiji/ImageJ running inside a micro-sam-fiji bridge session, which adds the command "micro-sam APG":
//     microsam-fiji fiji --fiji /path/to/Fiji.app        (or: microsam-fiji fiji   for plain ImageJ)
// Install: copy this file to Fiji.app/macros/ (or Plugins > Macros > Install...), or open and Run it in the
// macro editor; it asks for the input and output folders and the options of run("micro-sam APG", ...).
// (Without a bridge session, the shell command  microsam-fiji segment INPUT_DIR --out OUTPUT_DIR  does the same.)
//
// From another macro or a script, pass everything as the argument and no dialog opens:
//     runMacro("/path/to/batch_folder.ijm", "input=[/data/in] output=[/data/out] model=[/m/model.zip] center=0.4");

arg = getArgument();
input = "";
output = "";
options = "";
if (arg == "") {
    input = getDirectory("Folder with the images to segment");
    output = getDirectory("Output folder for RoiSet.zip and label images");
    Dialog.create("micro-sam APG: batch");
    Dialog.addString("Options", "min_size=25", 60);
    Dialog.addMessage("e.g. model=[/path/model.zip] mode=apg foreground=0.5 center=0.5 boundary=0.5 min_size=25 nms=0.9");
    Dialog.show();
    options = Dialog.getString();
} else {
    // input=[...] and output=[...] are ours; everything else goes to the command
    input = valueOf(arg, "input");
    output = valueOf(arg, "output");
    options = withoutKey(withoutKey(arg, "input"), "output");
}
if (input == "" || !File.isDirectory(input))
    exit("micro-sam APG batch: input folder '" + input + "' not found: pass input=[folder]");
if (output == "")
    exit("micro-sam APG batch: no output folder: pass output=[folder]");
input = withSlash(input);
output = withSlash(output);
File.makeDirectory(output);

files = getFileList(input);
images = newArray(0);
for (i = 0; i < files.length; i++) {
    lower = toLowerCase(files[i]);
    if (endsWith(lower, ".tif") || endsWith(lower, ".tiff") || endsWith(lower, ".png") || endsWith(lower, ".jpg"))
        images = Array.concat(images, files[i]);
}
if (images.length == 0)
    exit("micro-sam APG batch: no images (.tif, .tiff, .png, .jpg) in " + input);

setBatchMode(true);
kept = roiManager("count");
total = 0;
for (i = 0; i < images.length; i++) {
    name = images[i];
    stem = substring(name, 0, lastIndexOf(name, "."));
    open(input + name);
    run("micro-sam APG", options + " rois=[" + output + stem + "_RoiSet.zip] labels=[" + output + stem + "_labels.tif]");
    found = roiManager("count") - kept;
    total = total + found;
    print("micro-sam APG batch: " + (i + 1) + "/" + images.length + " " + name + ": " + found + " objects");
    if (found > 0) {
        // the ROIs are in the RoiSet.zip now; the ROI Manager gets back what it held before
        added = Array.getSequence(roiManager("count"));
        added = Array.slice(added, kept);
        roiManager("select", added);
        roiManager("delete");
    }
    close();
}
setBatchMode(false);
print("micro-sam APG batch: done, " + total + " objects in " + images.length + " images -> " + output);

function withSlash(dir) {
    if (endsWith(dir, "/") || endsWith(dir, File.separator))
        return dir;
    return dir + File.separator;
}

function valueOf(text, key) {
    // key=[value with spaces] or key=value
    i = indexOf(" " + text, " " + key + "=");
    if (i < 0)
        return "";
    rest = substring(text, i + lengthOf(key) + 1);
    if (startsWith(rest, "["))
        return substring(rest, 1, indexOf(rest, "]"));
    end = indexOf(rest, " ");
    if (end < 0)
        return rest;
    return substring(rest, 0, end);
}

function withoutKey(text, key) {
    value = valueOf(text, key);
    if (indexOf(text, key + "=[") >= 0)
        return replace(text, key + "=\\[" + escaped(value) + "\\]", "");
    return replace(text, key + "=" + escaped(value), "");
}

function escaped(s) {
    // a literal for replace(), which takes a regular expression
    return "\\Q" + s + "\\E";
}
