package microsam_fiji;

/** A failure the user can fix; its message is one line that names the fix. */
class PluginError extends RuntimeException {
	private static final long serialVersionUID = 1L;

	PluginError(String message) {
		super(message);
	}
}
