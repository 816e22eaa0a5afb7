// segment_with_cli.ijm - segment the current image with micro-sam APG in a Fiji without the micro-sam APG plugin.
// It saves the image to a temporary TIFF, runs the microsam-fiji command line program with exec() and opens the
// RoiSet.zip it writes into the ROI Manager (existing ROIs stay unless "replace" is given).
//
// Install micro-sam-fiji once (pip install micro-sam-fiji, in any Python environment) and note where the
// program is:  which microsam-fiji  (Windows: where microsam-fiji), e.g. /home/me/.venv/bin/microsam-fiji.
// Then copy this file to Fiji.app/macros/ (or Plugins > Macros > Install...), open an image and run it: the
// dialog asks for the program's path and the options (both remembered).
// From another macro or a script, pass the options as the argument and no dialog opens, e.g.
//     runMacro("/path/to/segment_with_cli.ijm", "cli=[/home/me/.venv/bin/microsam-fiji] model=[/m/model.zip] center=0.3 replace");
// Options: cli=[program], then every option of run("micro-sam APG", "...") (docs/fiji.md lists them; this macro
// does not read them): the whole option string goes to the program (microsam-fiji macro), which parses it with
// the plugin's own table of options and runs the same command code: one dialect. The current plane (and channel)
// is the one segmented without stack/3d; an area selection restricts the command to it (saved for the program as a
// .roi file; the selection stays on the image). The objects' measurements open as the Results table
// "micro-sam objects". Each call loads the model again and re-encodes the image; with the plugin
// (microsam-fiji install-fiji) both stay cached.

arg = getArgument();
if (nImages == 0)
    exit("micro-sam APG: no image is open: open the image to segment first");
if (arg == "") {
    // the options are those of run("micro-sam APG", ...), written as a macro writes them: the program parses and
    // checks them (its table of options is the one the plugin's dialog shows); empty: micro-sam's defaults
    Dialog.create("micro-sam APG (command line)");
    Dialog.addString("microsam-fiji program", call("ij.Prefs.get", "microsam.cli", "microsam-fiji"), 50);
    Dialog.addString("Options", call("ij.Prefs.get", "microsam.cli.options", ""), 50);
    Dialog.addMessage("e.g. model=[/path/model.zip] center=0.3 replace stack 3d channel=2 (empty: the defaults);\n"
        + "every option: microsam-fiji macro --help, or the Help of Plugins > Segmentation > micro-sam APG");
    Dialog.show();
    cli = Dialog.getString();
    arg = Dialog.getString();
    call("ij.Prefs.set", "microsam.cli", cli);
    call("ij.Prefs.set", "microsam.cli.options", arg);
} else {
    // ImageJ's own reading of key=[value] (nested brackets too), as the plugin reads its options
    cli = call("ij.Macro.getValue", arg + " ", "cli", "");
    if (cli == "")
        cli = call("ij.Prefs.get", "microsam.cli", "microsam-fiji");
}

title = getTitle();
id = getImageID();
tmp = newTempFolder();
input = tmp + "image.tif";
plane = getSliceNumber() - 1;  // the stack index of the current plane: segmented alone without "stack"
// the selection for the program (an area one restricts the command to it); removed while duplicating, which
// would crop the image to it, then restored
selection = "";
hadSelection = selectionType() != -1;
if (hadSelection) {
    selection = tmp + "selection.roi";
    saveAs("Selection", selection);
    run("Select None");
}
// save a duplicate: saving the image itself would rename it
wasBatch = is("Batch Mode");
setBatchMode(true);
run("Duplicate...", "title=microsam-fiji-input duplicate");
saveAs("Tiff", input);
close();
setBatchMode(wasBatch);
selectImage(id);
if (hadSelection)
    run("Restore Selection");

// the program parses the options itself (all of them, the plugin's grammar) and writes rois.zip, labels.tif
// (with show) and result.txt (count, replace, show, warnings, or one error line) into the folder
cliArgs = newArray("macro", input, "--options", arg, "--ignore", "cli", "--out", tmp, "--current-plane", "" + plane);
if (selection != "")
    cliArgs = Array.concat(cliArgs, newArray("--selection", selection));
output = runCli(cli, cliArgs);
result = tmp + "result.txt";
if (!File.exists(result)) {
    cleanUp(tmp);
    exit("micro-sam APG: the command line program failed:\n" + output);
}
error = resultValue(result, "error");
if (error != "") {
    cleanUp(tmp);
    exit("micro-sam APG: " + error);
}
warnings = resultValues(result, "warning");
for (i = 0; i < warnings.length; i++)
    print("micro-sam APG: " + warnings[i]);
found = parseInt(resultValue(result, "count"));
replacing = resultValue(result, "replace");  // the macro language compares a function's string only via a variable
if (replacing == "true")
    roiManager("reset");
before = roiManager("count");
// the ROI Manager refuses a zip without ROIs with a dialog: with 0 objects there is nothing to open
if (found > 0)
    roiManager("open", tmp + "rois.zip");
// the objects' measurements as the Results table "micro-sam objects" (what the plugin shows)
table = resultValue(result, "table");
if (table != "") {
    if (isOpen("micro-sam objects")) {
        selectWindow("micro-sam objects");
        run("Close");
    }
    open(table);
    Table.rename(File.getName(table), "micro-sam objects");
}
shown = resultValue(result, "show");
if (shown != "") {
    open(shown);
    rename(title + "-labels");
}
cleanUp(tmp);
if (!is("Batch Mode") && roiManager("count") > 0)
    roiManager("Show All");
print("micro-sam APG: " + (roiManager("count") - before) + " objects in " + title);

function resultValues(path, key) {
    // the values of a key in result.txt (key<TAB>value lines)
    lines = split(replace(File.openAsString(path), "\r", ""), "\n");
    out = newArray(0);
    for (i = 0; i < lines.length; i++)
        if (startsWith(lines[i], key + "\t"))
            out = Array.concat(out, newArray(substring(lines[i], lengthOf(key) + 1)));
    return out;
}

function resultValue(path, key) {
    values = resultValues(path, key);
    if (values.length == 0)
        return "";
    return values[0];
}

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


