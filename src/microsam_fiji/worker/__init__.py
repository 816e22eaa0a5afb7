"""The Python side of ``micro-sam APG`` in a Fiji or ImageJ started the usual way (double-click), not from Python.

The ImageJ 1.x plugin (Java source in ``fiji-plugin/``, installed by :mod:`microsam_fiji.installer`) starts
:mod:`.worker` on first use and keeps it for the ImageJ session (Appose's worker protocol on stdin/stdout; the model
and the per-image embeddings stay loaded); :mod:`.tasks` serves the plugin's requests with the same command as the
in-process transport (:mod:`microsam_fiji.command`), and :mod:`.raw_image` reads the pixels the plugin sends."""
