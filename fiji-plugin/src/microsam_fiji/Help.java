package microsam_fiji;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;

/**
 * The dialog's Help: this project's own page, {@code help.html} in the plugin's jar (installed with the plugin),
 * shown by ImageJ's HTMLDialog. A page inside the jar needs no browser and no network (upstream's web page,
 * which Help opened before, gave "Could not find a browser" offline).
 */
final class Help {
	static final String RESOURCE = "help.html";

	private Help() {
	}

	/**
	 * The page with its placeholders filled in: {version}, {default_model}, {models}, {log} and {options}.
	 *
	 * @param defaultModel what an empty model field means
	 * @param models the model names install-fiji recorded (comma-separated text)
	 * @param options the options' rows ({@code <li>...}), made by the worker from the one table of options
	 * @return {@code <html>...}, which GenericDialog.addHelp shows in an HTMLDialog
	 */
	static String page(String defaultModel, String models, String options) {
		String html = read();
		if (html == null) // a jar built without the page: still the version and the essentials
			html = "<html><h2>micro-sam APG</h2><p>micro-sam-fiji {version}; default model {default_model}. "
				+ "Models: {models}. Worker log: {log}.</p><ul>{options}</ul></html>";
		return html.replace("{options}", options) // HTML already (escaped by the worker)
			.replace("{version}", escape(Version.VERSION))
			.replace("{default_model}", escape(defaultModel))
			.replace("{models}", escape(models.isEmpty() ? "see microsam-fiji models" : models.replace(",", ", ")))
			.replace("{log}", escape(new java.io.File(Worker.userFolder(), "worker.log").getPath()));
	}

	/** A command's Help without a page of its own: its title and the options' rows from the worker. */
	static String list(String title, String rows) {
		return "<html><h2>" + escape(title) + "</h2><p>micro-sam-fiji " + escape(Version.VERSION)
			+ ". The fields, each a macro option (in bold):</p><ul>" + rows + "</ul></html>";
	}

	/** The About line under the dialog's fields. */
	static String about() {
		return "micro-sam-fiji " + Version.VERSION + " \u00b7 Segment Anything for Microscopy (\u00b5SAM), "
			+ "automatic prompt generation \u00b7 Help: the fields explained";
	}

	private static String read() {
		InputStream in = Help.class.getResourceAsStream(RESOURCE);
		if (in == null)
			return null;
		try {
			ByteArrayOutputStream out = new ByteArrayOutputStream();
			byte[] buffer = new byte[8192];
			for (int n; (n = in.read(buffer)) > 0;)
				out.write(buffer, 0, n);
			return new String(out.toByteArray(), "UTF-8");
		} catch (IOException e) {
			return null;
		} finally {
			try { in.close(); } catch (IOException ignored) { /* read done or failed already */ }
		}
	}

	private static String escape(String text) {
		return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
	}
}
