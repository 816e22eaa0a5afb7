// batch_folder.ijm - segment every image of a folder with micro-sam APG: <name>_RoiSet.zip and <name>_labels.tif
// per image in the output folder, progress in the Log window. The ROI Manager keeps what it held before.
// Files that are not images ImageJ can open are skipped and listed at the end; the other images are done.
//
// Needs the command "micro-sam APG": the plugin (microsam-fiji install-fiji /path/to/Fiji.app, which also copies
// this macro into Fiji.app/macros), or a Fiji started from Python (microsam-fiji fiji --fiji /path/to/Fiji.app).
// Install: copy this file to Fiji.app/macros/ (or Plugins > Macros > Install...), or open and Run it in the
// macro editor; it asks for the input and output folders and the options of run("micro-sam APG", ...).
// Without that command, give cli=[/path/to/microsam-fiji] (in the dialog: the program's path): the whole
// folder goes to the command line program in one call (microsam-fiji segment INPUT --out OUTPUT), which also
// writes OUTPUT/summary.csv, and this macro reports its result per image.
//
// From another macro or a script, pass everything as the argument and no dialog opens (this macro reads only
// input, output and cli; the rest goes to the command, which parses it: docs/fiji.md lists the options):
//     runMacro("/path/to/batch_folder.ijm", "input=[/data/in] output=[/data/out] model=[/m/model.zip] center=0.3");
//     runMacro("/path/to/batch_folder.ijm", "input=[/data/in] output=[/data/out] cli=[/home/me/.venv/bin/microsam-fiji]");

arg = getArgument();
input = "";
output = "";
options = "";
cli = "";
if (arg == "") {
    input = getDirectory("Folder with the images to segment");
    output = getDirectory("Output folder for RoiSet.zip and label images");
    Dialog.create("micro-sam APG: batch");
    Dialog.addString("Options", "", 60);
    Dialog.addMessage("those of run(\"micro-sam APG\", ...), e.g. model=[/path/model.zip] center=0.3 3d (empty: the defaults)");
    Dialog.addString("microsam-fiji program (empty: the micro-sam APG command)", "", 60);
    Dialog.show();
    options = Dialog.getString();
    cli = Dialog.getString();
} else {
    // input=[...], output=[...] and cli=[...] are ours, read as ImageJ reads options (nested brackets too); the
    // whole argument goes to the command, which leaves our keys out (ignore=[...]) and parses the rest itself
    input = call("ij.Macro.getValue", arg + " ", "input", "");
    output = call("ij.Macro.getValue", arg + " ", "output", "");
    cli = call("ij.Macro.getValue", arg + " ", "cli", "");
    options = "ignore=[input output cli] " + arg;
}
if (input == "" || !File.isDirectory(input))
    exit("micro-sam APG batch: input folder '" + input + "' not found: pass input=[folder]");
if (output == "")
    exit("micro-sam APG batch: no output folder: pass output=[folder]");
input = withSlash(input);
output = withSlash(output);
checkWritable(output);

suffixes = newArray(".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp");
files = getFileList(input);
images = newArray(0);
for (i = 0; i < files.length; i++) {
    for (k = 0; k < suffixes.length; k++)
        if (endsWith(toLowerCase(files[i]), suffixes[k]))
            images = Array.concat(images, newArray(files[i]));
}
if (images.length == 0)
    exit("micro-sam APG batch: no images (.tif, .tiff, .png, .jpg, .jpeg, .bmp) in " + input);

if (cli != "") {
    withCli(cli, input, output, options, images.length);
    exit;
}

setBatchMode(true);
kept = roiManager("count");
total = 0;
done = 0;
skipped = "";
for (i = 0; i < images.length; i++) {
    name = images[i];
    stem = substring(name, 0, lastIndexOf(name, "."));
    before = nImages;
    call("ij.IJ.redirectErrorMessages");  // a file ImageJ cannot read: a Log line, not a dialog
    open(input + name);
    if (nImages == before) {
        // not an image: ImageJ showed it as text or a table, or not at all
        closeWindow(name);
        skipped = skipped + " " + name;
        print("micro-sam APG batch: " + (i + 1) + "/" + images.length + " " + name + ": skipped, not an image ImageJ can open");
        continue;
    }
    // "stack": a file of the folder is segmented whole (every plane), as microsam-fiji batch does
    run("micro-sam APG", options + " stack rois=[" + output + stem + "_RoiSet.zip] labels=[" + output + stem + "_labels.tif]");
    found = roiManager("count") - kept;
    total = total + found;
    done = done + 1;
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
message = "micro-sam APG batch: done, " + total + " objects in " + done + " images -> " + output;
if (skipped != "")
    message = message + "; skipped (not images):" + skipped;
print(message);

function withCli(program, input, output, options, n) {
    // the whole folder in one call of the command line program, which parses the options itself (the command's
    // own table of options); its summary.csv has a row per image
    args = newArray("segment", input, "--out", output, "--quiet", "--options", options);
    summary = output + "summary.csv";
    before = 0;
    if (File.exists(summary))
        before = File.lastModified(summary);
    print("micro-sam APG batch: " + n + " images -> " + program + " segment ...");
    text = runCli(program, args);
    if (!File.exists(summary) || File.lastModified(summary) == before)
        exit("micro-sam APG batch: the command line program failed:\n" + text);
    lines = split(replace(File.openAsString(summary), "\r", ""), "\n");
    header = csvFields(lines[0]);
    total = 0;
    failed = 0;
    for (i = 1; i < lines.length; i++) {
        row = csvFields(lines[i]);
        image = column(header, row, "image");
        status = column(header, row, "status");
        if (status == "error") {
            failed++;
            print("micro-sam APG batch: " + i + "/" + (lines.length - 1) + " " + image + ": error: " + column(header, row, "error"));
        } else {
            objects = column(header, row, "objects");
            total = total + parseInt(objects);
            print("micro-sam APG batch: " + i + "/" + (lines.length - 1) + " " + image + ": " + objects + " objects (" + status + ")");
        }
    }
    message = "micro-sam APG batch: done, " + total + " objects in " + (lines.length - 1 - failed) + " images -> " + output;
    if (failed > 0)
        message = message + "; " + failed + " failed (see " + summary + ")";
    print(message);
}

function column(header, row, name) {
    for (j = 0; j < header.length && j < row.length; j++)
        if (header[j] == name)
            return row[j];
    return "";
}

function checkWritable(dir) {
    // before any work: an output folder that cannot be written stops the batch with the reason
    File.makeDirectory(dir);
    probe = dir + ".microsam-fiji-write-test";
    error = call("ij.IJ.saveString", "", probe);
    if (!File.isDirectory(dir) || !File.exists(probe))
        exit("micro-sam APG batch: cannot write to the output folder " + dir + " (" + error + "): choose a writable folder");
    ok = File.delete(probe);
}

function closeWindow(title) {
    // the text or table window ImageJ opened for a file that is not an image
    if (isOpen(title) && getInfo("window.title") == title && getInfo("window.type") != "Image")
        run("Close");
}

function runCli(program, arguments) {
    // exec() returns only standard output: run the program through the shell to also get standard error
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

function withSlash(dir) {
    if (endsWith(dir, "/") || endsWith(dir, File.separator))
        return dir;
    return dir + File.separator;
}

function escaped(s) {
    // a literal for replace(), which takes a regular expression
    return "\\Q" + s + "\\E";
}
