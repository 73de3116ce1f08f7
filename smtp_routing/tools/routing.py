"""Routing helpers that are not the decision: the decision itself is :mod:`.planning`."""


def majority_language(langs):
    """The language of a mail with recipients in several languages: the most common, ties by first seen.

    >>> majority_language(["es_ES", "en_US", "es_ES"])
    'es_ES'
    >>> majority_language(["en_US", "es_ES"])
    'en_US'
    >>> majority_language([None, False]) is None
    True
    """
    counts = {}
    for lang in langs:
        if lang:
            counts[lang] = counts.get(lang, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    return next(lang for lang in counts if counts[lang] == best)
