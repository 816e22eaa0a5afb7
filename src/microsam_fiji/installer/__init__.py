"""Putting ``micro-sam APG`` into a Fiji or ImageJ folder: the plugin's jar, built from the Java sources in
``fiji-plugin/`` (:mod:`.jarbuild`, run by the wheel build; :mod:`.jar` finds the built one), and
``microsam-fiji install-fiji DIR`` (:mod:`.install`), which copies it and the fiji-scripts there and records this
Python for the plugin's worker (:mod:`microsam_fiji.worker`)."""
