"""``micro-sam APG`` in a Fiji or ImageJ started the usual way (double-click), not from Python.

Three pieces:

* the ImageJ 1.x plugin (Java source in ``fiji-plugin/``, built into ``micro_sam_fiji.jar`` by :mod:`.jar`, which
  ships inside this package) adds the command and its dialog;
* :mod:`.worker` is the Python process the plugin starts on first use and keeps for the ImageJ session
  (Appose's worker protocol on stdin/stdout; the model and the per-image embeddings stay loaded);
* :mod:`.tasks` serves the plugin's requests with the same option grammar and segmentation as the in-process
  command (:mod:`microsam_fiji.macro.options`, :func:`microsam_fiji.engines.segment.run`).

:mod:`.install` puts the jar and the fiji-scripts into a Fiji.app or ImageJ folder and records this Python
(``microsam-fiji install-fiji DIR``)."""
