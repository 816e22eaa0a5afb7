"""The ``micro-sam APG`` command, independent of how it reached Python: its option grammar (:mod:`.options`)
and its one implementation (:mod:`.execute`), called by every transport."""
