"""The answer's shape and messages, without torch: what the site's pages, admin and models need to know about a
served answer, importable by processes that never load a model.

``predictions.models`` shows a rejection's message on every page that lists coins; importing it from
``training.ml.ensemble`` pulled torch, torchvision and the coin generator into every Django process (``migrate``,
``collectstatic``, beat: 840 MB peak RSS after ``django.setup()``, against about 60 MB without them). The ensemble and
the pyfunc import these names from here, so the served answer and the stored one say the same words.
"""

from __future__ import annotations

DETAIL_COLUMNS = 5  # year, low, high, coin score, read score; then p(year) for a date-reading ensemble
ALTERNATIVES = 3
NOT_A_COIN = "not_a_coin"
UNREADABLE = "unreadable"
REJECT_MESSAGES = {
    NOT_A_COIN: "This photo does not look like a coin. Photograph one coin, filling most of the picture.",
    UNREADABLE: "The date on this coin cannot be read. Retake both sides in even light, sharp and close up, "
    "with the date facing the camera.",
}
