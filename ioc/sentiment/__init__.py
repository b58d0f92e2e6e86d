"""Vietnamese sentiment (negative / neutral / positive) and topic tags of online mentions, from a
transparent lexicon shipped with the code: every verdict can be explained by the phrases it found.

    >>> from ioc.sentiment import analyse
    >>> analyse("Đường sạt lở, rất nguy hiểm").label
    'negative'
"""

from ioc.sentiment.lexicon import Lexicon, Verdict, analyse, default_lexicon
from ioc.sentiment.topics import TopicTagger, default_tagger, tag

__all__ = ["Lexicon", "TopicTagger", "Verdict", "analyse", "default_lexicon", "default_tagger", "tag"]
