"""Reading, the second stage of a page's path: bytes → text → word counts.

text.py decodes the bytes and keeps the visible text; words.py splits it into words and
counts them (pure, no I/O). nltk_data/ ships NLTK's English stopwords.
"""
