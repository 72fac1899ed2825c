"""List and dictionary functions written for the synthgen seed corpus (Apache-2.0)."""


def flatten(nested):
    """Flatten arbitrarily nested lists into one flat list, keeping order."""
    flat = []
    for item in nested:
        if isinstance(item, list):
            flat.extend(flatten(item))
        else:
            flat.append(item)
    return flat


def chunked(items, size):
    """Split a list into consecutive chunks of `size` items; the last may be shorter."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def unique_in_order(items):
    """Remove duplicates from a list, keeping the first occurrence of each item."""
    seen = set()
    result = []
    for item in items:
        if item not in seen:
            seen.add(item)
            result.append(item)
    return result


def rotate_list(items, k):
    """Rotate a list to the right by k positions: rotate_list([1, 2, 3], 1) == [3, 1, 2]."""
    if not items:
        return []
    k %= len(items)
    return items[-k:] + items[:-k]


def merge_sorted(first, second):
    """Merge two sorted lists into one sorted list in linear time."""
    merged, i, j = [], 0, 0
    while i < len(first) and j < len(second):
        if first[i] <= second[j]:
            merged.append(first[i])
            i += 1
        else:
            merged.append(second[j])
            j += 1
    return merged + first[i:] + second[j:]


def group_by(items, key):
    """Group items into a dict of lists by the value key(item) returns."""
    groups = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def invert_dict(mapping):
    """Swap keys and values; values that occur more than once collect their keys in a list."""
    inverted = {}
    for k, v in mapping.items():
        inverted.setdefault(v, []).append(k)
    return inverted


def deep_merge(base, override):
    """Merge two dicts recursively: nested dicts are merged, other values from `override` win."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def transpose(matrix):
    """Transpose a rectangular matrix given as a list of rows."""
    return [list(row) for row in zip(*matrix)]


def matrix_multiply(a, b):
    """Multiply two matrices given as lists of rows; the inner dimensions must agree."""
    return [[sum(x * y for x, y in zip(row, col)) for col in zip(*b)] for row in a]


def sliding_window_max(values, k):
    """Maximum of every window of k consecutive values, in O(n) with a deque of indexes."""
    from collections import deque

    window, result = deque(), []
    for i, value in enumerate(values):
        while window and values[window[-1]] <= value:
            window.pop()
        window.append(i)
        if window[0] <= i - k:
            window.popleft()
        if i >= k - 1:
            result.append(values[window[0]])
    return result


def top_k_frequent(items, k):
    """The k most frequent items, most frequent first; ties keep first-seen order."""
    counts = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return sorted(counts, key=lambda item: -counts[item])[:k]


def pairwise_sums_to(values, target):
    """Return the index pairs (i, j), i < j, whose values add up to target."""
    positions = {}
    pairs = []
    for j, value in enumerate(values):
        for i in positions.get(target - value, []):
            pairs.append((i, j))
        positions.setdefault(value, []).append(j)
    return sorted(pairs)
