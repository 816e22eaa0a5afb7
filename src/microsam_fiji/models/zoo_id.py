"""Model Zoo ids and URLs in a model source string."""
from __future__ import annotations

import re

# Model Zoo ids are two or more lowercase words joined by hyphens ("diplomatic-bug"), optionally /version
ZOO_ID = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)+(/[0-9][0-9.]*)?")



ZOO_SITE_ID = re.compile(r"(?:[?&]id=|/artifacts/)([a-z][a-z0-9]*(?:-[a-z0-9]+)+)")



# the Model Zoo's file store, as in micro-sam's registry URLs: .../bioimage.io/<id>/<version>/files/...
ZOO_FILE_URL = re.compile(r"/bioimage\.io/([a-z][a-z0-9]*(?:-[a-z0-9]+)+)/")



def zoo_reference(text: str) -> str | None:
    """What bioimageio.spec should load for ``text`` when it names a Model Zoo model (an id, a bioimage.io page
    or any http(s) URL of a package or rdf.yaml), else None."""
    text = text.strip()
    if re.match(r"https?://", text):
        site = ZOO_SITE_ID.search(text)
        if re.match(r"https?://(www\.)?bioimage\.io/", text) and site:
            return site.group(1)  # the website's page of a model: its id
        return text
    if ZOO_ID.fullmatch(text):
        return text
    return None



def zoo_id_of_url(url: str) -> str | None:
    match = ZOO_FILE_URL.search(url)
    return match.group(1) if match else None
