// segment_with_cli.ijm - segment the current image with micro-sam APG in a Fiji without the micro-sam APG plugin.
// It saves the image to a temporary TIFF, runs the microsam-fiji command line program with exec() and opens the
// RoiSet.zip it writes into the ROI Manager (existing ROIs stay unless "replace" is given).
//
// Install micro-sam-fiji once (pip install micro-sam-fiji, in any Python environment) and note where the
// program is:  which microsam-fiji  (Windows: where microsam-fiji), e.g. /home/me/.venv/bin/microsam-fiji.
// Then copy this file to Fiji.app/macros/ (or Plugins > Macros > Install...), open an image and run it: the
// dialog asks for the program's path (remembered), the model and the parameters.
// From another macro or a script, pass the options as the argument and no dialog opens, e.g.
//     runMacro("/path/to/segment_with_cli.ijm", "cli=[/home/me/.venv/bin/microsam-fiji] model=[/m/model.zip] center=0.3 replace");
// Options: cli=[program] model=[...] mode=apg|ais replace, and segmentation parameters name=value
// (foreground, center, boundary, min_size, nms, or any micro-sam parameter name). Each call loads the model
// again and re-encodes the image; with the plugin (microsam-fiji install-fiji) both stay cached in its worker.

arg = getArgument();
if (nImages == 0)
    exit("micro-sam APG: no image is open: open the image to segment first");
if (arg == "") {
    Dialog.create("micro-sam APG (command line)");
    Dialog.addString("microsam-fiji program", call("ij.Prefs.get", "microsam.cli", "microsam-fiji"), 50);
    Dialog.addString("Model (empty: demo model)", "", 50);
    Dialog.addChoice("Mode", newArray("apg", "ais"), "apg");
    Dialog.addString("Parameters", "foreground=0.5 center=0.5 boundary=0.5 min_size=25", 50);
    Dialog.addCheckbox("Replace the ROIs in the ROI Manager", false);
    Dialog.show();
    cli = Dialog.getString();
    call("ij.Prefs.set", "microsam.cli", cli);
    model = Dialog.getString();
    arg = "mode=" + Dialog.getChoice() + " " + Dialog.getString();
    if (model != "")
        arg = arg + " model=[" + model + "]";
    if (Dialog.getCheckbox())
        arg = arg + " replace";
} else {
    cli = valueOf(arg, "cli");
    if (cli == "")
        cli = call("ij.Prefs.get", "microsam.cli", "microsam-fiji");
}

// the command line: microsam-fiji segment IMAGE --out DIR --quiet [--model M] [--mode apg] [--param k=v ...]
args = newArray("segment");
model = valueOf(arg, "model");
if (model != "")
    args = Array.concat(args, newArray("--model", model));
mode = valueOf(arg, "mode");
if (mode != "")
    args = Array.concat(args, newArray("--mode", mode));
words = split(removeBracketed(arg), " ");
for (i = 0; i < words.length; i++) {
    key = words[i];
    if (indexOf(key, "=") > 0) {
        key = substring(key, 0, indexOf(key, "="));
        if (key != "cli" && key != "model" && key != "mode")
            args = Array.concat(args, newArray("--param", key + "=" + valueOf(arg, key)));
    } else if (key != "replace" && key != "")
        exit("micro-sam APG: unknown option '" + key + "': use cli=[...] model=[...] mode=apg|ais name=value replace");
}

title = getTitle();
id = getImageID();
tmp = newTempFolder();
input = tmp + "image.tif";
// save a duplicate: saving the image itself would rename it
wasBatch = is("Batch Mode");
setBatchMode(true);
run("Duplicate...", "title=microsam-fiji-input duplicate");
saveAs("Tiff", input);
close();
setBatchMode(wasBatch);
selectImage(id);

args = Array.concat(args, newArray(input, "--out", tmp, "--quiet"));
output = runCli(cli, args);
roiset = tmp + "image_RoiSet.zip";
// the program's summary.csv says how many objects, or why it failed (older versions: only the files)
row = summaryRow(tmp + "summary.csv");
if (row.length > 0 && row[1] == "error") {
    cleanUp(tmp);
    exit("micro-sam APG: " + row[2]);
}
if (!File.exists(roiset)) {
    cleanUp(tmp);
    exit("micro-sam APG: the command line program failed:\n" + output);
}
found = 0;
if (row.length > 0)
    found = parseInt(row[0]);
else if (File.length(roiset) > 22)  // 22 bytes: a zip without entries
    found = -1;
if (indexOf(" " + arg + " ", " replace ") >= 0)
    roiManager("reset");
before = roiManager("count");
// the ROI Manager refuses a zip without ROIs with a dialog: with 0 objects there is nothing to open
if (found != 0)
    roiManager("open", roiset);
cleanUp(tmp);
if (!is("Batch Mode") && roiManager("count") > 0)
    roiManager("Show All");
print("micro-sam APG: " + (roiManager("count") - before) + " objects in " + title);

function newTempFolder() {
    // one new folder per run (two Fiji instances, or a run after a failed one, never share one), removed after
    base = getDirectory("temp") + "microsam-fiji-" + d2s(getTime(), 0) + "-";
    do {
        dir = base + d2s(floor(random * 1e9), 0) + File.separator;
    } while (File.exists(dir));
    File.makeDirectory(dir);
    if (!File.isDirectory(dir))
        exit("micro-sam APG: cannot create a folder in the temporary folder " + getDirectory("temp")
            + ": free space there or set another (Edit > Options > Misc)");
    return dir;
}

function summaryRow(path) {
    // the first row of summary.csv as (objects, status, error); none if there is no summary
    if (!File.exists(path))
        return newArray(0);
    lines = split(replace(File.openAsString(path), "\r", ""), "\n");
    if (lines.length < 2)
        return newArray(0);
    header = csvFields(lines[0]);
    fields = csvFields(lines[1]);
    out = newArray(3);
    names = newArray("objects", "status", "error");
    for (k = 0; k < 3; k++) {
        out[k] = "";
        for (j = 0; j < header.length && j < fields.length; j++)
            if (header[j] == names[k])
                out[k] = fields[j];
    }
    return out;
}

function csvFields(line) {
    // one line of a CSV file (quoted fields, "" inside quotes) -> its fields
    fields = newArray(0);
    field = "";
    quoted = false;
    line = line + " ";  // a look-ahead character (the macro language evaluates all of a && b)
    for (i = 0; i < lengthOf(line) - 1; i++) {
        c = substring(line, i, i + 1);
        if (quoted && c == "\"" && substring(line, i + 1, i + 2) == "\"") {
            field = field + c;
            i++;
        } else if (c == "\"")
            quoted = !quoted;
        else if (c == "," && !quoted) {
            fields = Array.concat(fields, newArray(field));
            field = "";
        } else
            field = field + c;
    }
    return Array.concat(fields, newArray(field));
}

function runCli(program, arguments) {
    // exec() hands a fixed argument list to the system without a shell and returns only standard output,
    // so run it through the system shell to also get the error message (standard error)
    line = quote(program);
    for (i = 0; i < arguments.length; i++)
        line = line + " " + quote(arguments[i]);
    if (startsWith(getInfo("os.name"), "Windows"))
        return exec("cmd", "/c", line + " 2>&1");
    return exec("sh", "-c", line + " 2>&1");
}

function quote(s) {
    if (startsWith(getInfo("os.name"), "Windows"))
        return "\"" + s + "\"";
    return "'" + replace(s, "'", "'\\''") + "'";
}

function cleanUp(dir) {
    // the run's temporary folder and all in it
    list = getFileList(dir);
    for (i = 0; i < list.length; i++) {
        if (endsWith(list[i], "/"))
            cleanUp(dir + list[i]);
        else
            ok = File.delete(dir + list[i]);
    }
    ok = File.delete(dir);
}

function removeBracketed(text) {
    // key=[a value with spaces] -> key=[]
    out = "";
    inside = false;
    for (i = 0; i < lengthOf(text); i++) {
        c = substring(text, i, i + 1);
        if (c == "[")
            inside = true;
        if (!inside)
            out = out + c;
        if (c == "]") {
            inside = false;
            out = out + "[]";
        }
    }
    return out;
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
