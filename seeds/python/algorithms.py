"""Classic algorithms written for the synthgen seed corpus (Apache-2.0)."""

import heapq


def binary_search(sorted_items, target):
    """Index of target in a sorted list, or -1 if it is absent."""
    low, high = 0, len(sorted_items) - 1
    while low <= high:
        mid = (low + high) // 2
        if sorted_items[mid] == target:
            return mid
        if sorted_items[mid] < target:
            low = mid + 1
        else:
            high = mid - 1
    return -1


def insertion_sort(items):
    """Return a new list with the items sorted by insertion sort."""
    result = list(items)
    for i in range(1, len(result)):
        current = result[i]
        j = i - 1
        while j >= 0 and result[j] > current:
            result[j + 1] = result[j]
            j -= 1
        result[j + 1] = current
    return result


def merge_sort(items):
    """Return a new sorted list using merge sort (stable, O(n log n))."""
    if len(items) <= 1:
        return list(items)
    middle = len(items) // 2
    left, right = merge_sort(items[:middle]), merge_sort(items[middle:])
    merged, i, j = [], 0, 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            merged.append(left[i])
            i += 1
        else:
            merged.append(right[j])
            j += 1
    return merged + left[i:] + right[j:]


def quickselect(items, k):
    """Return the k-th smallest item (0-based) of a non-empty list in expected linear time."""
    pivot = items[len(items) // 2]
    lows = [x for x in items if x < pivot]
    pivots = [x for x in items if x == pivot]
    highs = [x for x in items if x > pivot]
    if k < len(lows):
        return quickselect(lows, k)
    if k < len(lows) + len(pivots):
        return pivot
    return quickselect(highs, k - len(lows) - len(pivots))


def max_subarray_sum(values):
    """Largest sum of a non-empty contiguous subarray (Kadane's algorithm)."""
    best = current = values[0]
    for value in values[1:]:
        current = max(value, current + value)
        best = max(best, current)
    return best


def edit_distance(a, b):
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning a into b."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def longest_increasing_subsequence(values):
    """Length of the longest strictly increasing subsequence, in O(n log n)."""
    from bisect import bisect_left

    tails = []
    for value in values:
        index = bisect_left(tails, value)
        if index == len(tails):
            tails.append(value)
        else:
            tails[index] = value
    return len(tails)


def knapsack(weights, values, capacity):
    """Best total value of a 0/1 knapsack with the given capacity (dynamic programming)."""
    best = [0] * (capacity + 1)
    for weight, value in zip(weights, values):
        for room in range(capacity, weight - 1, -1):
            best[room] = max(best[room], best[room - weight] + value)
    return best[capacity]


def coin_change(coins, amount):
    """Fewest coins that sum to amount, or -1 when it cannot be made."""
    inf = amount + 1
    fewest = [0] + [inf] * amount
    for total in range(1, amount + 1):
        for coin in coins:
            if coin <= total:
                fewest[total] = min(fewest[total], fewest[total - coin] + 1)
    return fewest[amount] if fewest[amount] < inf else -1


def shortest_path(graph, start, goal):
    """Dijkstra on a dict {node: [(neighbour, weight), ...]}; returns the distance or None."""
    distances = {start: 0}
    queue = [(0, start)]
    while queue:
        distance, node = heapq.heappop(queue)
        if node == goal:
            return distance
        if distance > distances.get(node, float("inf")):
            continue
        for neighbour, weight in graph.get(node, []):
            candidate = distance + weight
            if candidate < distances.get(neighbour, float("inf")):
                distances[neighbour] = candidate
                heapq.heappush(queue, (candidate, neighbour))
    return None


def topological_sort(dependencies):
    """Order the nodes of {node: [prerequisites]} so prerequisites come first; raise ValueError on a cycle."""
    order, state = [], {}

    def visit(node):
        if state.get(node) == "done":
            return
        if state.get(node) == "active":
            raise ValueError(f"cycle through {node!r}")
        state[node] = "active"
        for prerequisite in dependencies.get(node, []):
            visit(prerequisite)
        state[node] = "done"
        order.append(node)

    for node in dependencies:
        visit(node)
    return order


def count_islands(grid):
    """Count groups of horizontally or vertically connected 1s in a grid of 0s and 1s."""
    rows, cols = len(grid), len(grid[0]) if grid else 0
    seen = set()
    islands = 0
    for r in range(rows):
        for c in range(cols):
            if grid[r][c] == 1 and (r, c) not in seen:
                islands += 1
                stack = [(r, c)]
                seen.add((r, c))
                while stack:
                    y, x = stack.pop()
                    for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                        if 0 <= ny < rows and 0 <= nx < cols and grid[ny][nx] == 1 and (ny, nx) not in seen:
                            seen.add((ny, nx))
                            stack.append((ny, nx))
    return islands


def balanced_brackets(text):
    """Return True if every (), [] and {} in text is closed in the right order."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for char in text:
        if char in "([{":
            stack.append(char)
        elif char in pairs:
            if not stack or stack.pop() != pairs[char]:
                return False
    return not stack
