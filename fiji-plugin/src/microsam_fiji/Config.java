package microsam_fiji;

import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.util.Properties;

/**
 * What {@code microsam-fiji install-fiji} recorded beside the plugin's jar: the Python interpreter that has
 * micro-sam-fiji, the default model and device, the models known by name, and the version of the package that wrote the jar.
 */
final class Config {
	static final String FILE_NAME = "micro-sam-fiji.properties";
	/** The bundled model: what no model= means without install-fiji --model. */
	static final String DEMO = "demo";
	/** The fix for a missing or broken set-up, naming this Fiji.app or ImageJ folder. */
	static final String SETUP = "run 'microsam-fiji install-fiji " + pluginFolder().getAbsoluteFile().getParentFile()
		+ "' in the Python environment that has micro-sam-fiji";

	final File file;
	final String python;
	final String model;
	final String device;
	final String version;
	/** The models by name install-fiji listed for the dialog (comma-separated; {@code microsam-fiji models}). */
	final String models;

	private Config(File file, Properties p) {
		this.file = file;
		this.python = p.getProperty("python", "").trim();
		this.model = p.getProperty("model", "").trim();
		this.device = p.getProperty("device", "").trim();
		this.version = p.getProperty("version", "").trim();
		this.models = p.getProperty("models", "").trim();
	}

	/** The folder that holds the plugin's jar (Fiji.app/plugins or an ImageJ plugins folder). */
	static File pluginFolder() {
		try {
			File jar = new File(Config.class.getProtectionDomain().getCodeSource().getLocation().toURI());
			return jar.isDirectory() ? jar : jar.getParentFile();
		} catch (Exception e) {
			String plugins = ij.Menus.getPlugInsPath();
			return plugins == null ? new File(".") : new File(plugins);
		}
	}

	static Config load() {
		File file = new File(pluginFolder(), FILE_NAME);
		if (!file.isFile())
			throw new PluginError("micro-sam-fiji is not set up (no " + file + "): " + SETUP);
		Properties p = new Properties();
		Reader in = null;
		try {
			// install.py writes UTF-8; Properties.load(InputStream) would decode ISO-8859-1 and turn a Python under
			// a non-ASCII path (a home folder with an accent) into one that does not exist
			in = new InputStreamReader(new FileInputStream(file), StandardCharsets.UTF_8);
			p.load(in);
		} catch (IOException e) {
			throw new PluginError("cannot read " + file + " (" + e.getMessage() + "): " + SETUP);
		} finally {
			if (in != null)
				try { in.close(); } catch (IOException ignored) { /* read already failed or done */ }
		}
		Config c = new Config(file, p);
		if (c.python.isEmpty() || !new File(c.python).canExecute())
			throw new PluginError("the Python recorded in " + file + " ('" + c.python + "') cannot be run: " + SETUP);
		return c;
	}
}
