"""String utilities written for the synthgen seed corpus (Apache-2.0)."""


def reverse_words(sentence):
    """Return the sentence with the order of its words reversed."""
    return " ".join(reversed(sentence.split()))


def is_palindrome(text):
    """Return True if text reads the same backwards, ignoring case and non-letters."""
    letters = [c.lower() for c in text if c.isalnum()]
    return letters == letters[::-1]


def count_vowels(text):
    """Count the vowels (a, e, i, o, u) in text, case-insensitively."""
    return sum(1 for c in text.lower() if c in "aeiou")


def capitalize_words(sentence):
    """Capitalize the first letter of every word and lower-case the rest."""
    return " ".join(word[:1].upper() + word[1:].lower() for word in sentence.split())


def run_length_encode(text):
    """Compress runs of equal characters: 'aaabcc' -> 'a3b1c2'."""
    if not text:
        return ""
    out = []
    current, count = text[0], 1
    for char in text[1:]:
        if char == current:
            count += 1
        else:
            out.append(f"{current}{count}")
            current, count = char, 1
    out.append(f"{current}{count}")
    return "".join(out)


def run_length_decode(encoded):
    """Invert run_length_encode: 'a3b1c2' -> 'aaabcc'."""
    out = []
    i = 0
    while i < len(encoded):
        char = encoded[i]
        i += 1
        digits = ""
        while i < len(encoded) and encoded[i].isdigit():
            digits += encoded[i]
            i += 1
        out.append(char * int(digits))
    return "".join(out)


def are_anagrams(first, second):
    """Return True if the two words use exactly the same letters, ignoring case and spaces."""
    def normalise(word):
        return sorted(word.replace(" ", "").lower())

    return normalise(first) == normalise(second)


def caesar_cipher(text, shift):
    """Shift every ASCII letter by `shift` places in the alphabet, keeping case; other characters stay."""
    result = []
    for char in text:
        if char.isascii() and char.isalpha():
            base = ord("A") if char.isupper() else ord("a")
            result.append(chr((ord(char) - base + shift) % 26 + base))
        else:
            result.append(char)
    return "".join(result)


def longest_common_prefix(words):
    """Return the longest prefix shared by all strings in the list ('' for an empty list)."""
    if not words:
        return ""
    prefix = words[0]
    for word in words[1:]:
        while not word.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


def slugify(title):
    """Turn a title into a URL slug: lower-case words joined by hyphens, punctuation dropped."""
    cleaned = "".join(c.lower() if c.isalnum() else " " for c in title)
    return "-".join(cleaned.split())


def word_frequencies(text):
    """Return a dict mapping each lower-cased word to how often it occurs in text."""
    counts = {}
    for word in text.lower().split():
        word = word.strip(".,;:!?\"'()")
        if word:
            counts[word] = counts.get(word, 0) + 1
    return counts


def wrap_text(text, width):
    """Greedily wrap text into lines of at most `width` characters, breaking only at spaces."""
    lines, current = [], ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def longest_palindromic_substring(text):
    """Return the longest substring of text that is a palindrome (the first one on ties)."""
    best = ""
    for center in range(len(text)):
        for left, right in ((center, center), (center, center + 1)):
            while left >= 0 and right < len(text) and text[left] == text[right]:
                left -= 1
                right += 1
            if right - left - 1 > len(best):
                best = text[left + 1 : right]
    return best
