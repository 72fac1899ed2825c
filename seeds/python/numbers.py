"""Number and math functions written for the synthgen seed corpus (Apache-2.0)."""

import math


def factorial(n):
    """Return n! for a non-negative integer n."""
    result = 1
    for k in range(2, n + 1):
        result *= k
    return result


def fibonacci(n):
    """Return the n-th Fibonacci number, with fibonacci(0) == 0 and fibonacci(1) == 1."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def gcd(a, b):
    """Greatest common divisor of two integers by Euclid's algorithm."""
    while b:
        a, b = b, a % b
    return abs(a)


def lcm(a, b):
    """Least common multiple of two positive integers."""
    return a * b // gcd(a, b)


def is_prime(n):
    """Return True if n is a prime number."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    for divisor in range(3, math.isqrt(n) + 1, 2):
        if n % divisor == 0:
            return False
    return True


def primes_up_to(limit):
    """Return all primes <= limit using the sieve of Eratosthenes."""
    if limit < 2:
        return []
    sieve = [True] * (limit + 1)
    sieve[0] = sieve[1] = False
    for n in range(2, math.isqrt(limit) + 1):
        if sieve[n]:
            sieve[n * n :: n] = [False] * len(range(n * n, limit + 1, n))
    return [n for n, prime in enumerate(sieve) if prime]


def digit_sum(n):
    """Sum of the decimal digits of an integer (sign ignored)."""
    return sum(int(d) for d in str(abs(n)))


def to_binary(n):
    """Binary representation of a non-negative integer as a string, without the '0b' prefix."""
    if n == 0:
        return "0"
    bits = []
    while n:
        bits.append(str(n % 2))
        n //= 2
    return "".join(reversed(bits))


def roman_numeral(n):
    """Convert an integer from 1 to 3999 to a Roman numeral."""
    values = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
              (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
    out = []
    for value, symbol in values:
        count, n = divmod(n, value)
        out.append(symbol * count)
    return "".join(out)


def mean_and_stdev(values):
    """Return (mean, population standard deviation) of a non-empty list of numbers."""
    mean = sum(values) / len(values)
    variance = sum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(variance)


def median(values):
    """Median of a non-empty list of numbers (mean of the two middle values for even length)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def integer_sqrt(n):
    """Largest integer r with r * r <= n, for n >= 0, found by binary search."""
    low, high = 0, n
    while low < high:
        mid = (low + high + 1) // 2
        if mid * mid <= n:
            low = mid
        else:
            high = mid - 1
    return low


def power_mod(base, exponent, modulus):
    """Compute (base ** exponent) % modulus by repeated squaring."""
    result = 1
    base %= modulus
    while exponent > 0:
        if exponent & 1:
            result = result * base % modulus
        base = base * base % modulus
        exponent >>= 1
    return result


def collatz_steps(n):
    """Number of steps for the Collatz sequence starting at n >= 1 to reach 1."""
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def solve_quadratic(a, b, c):
    """Real roots of a*x**2 + b*x + c = 0 as a sorted list (empty when there are none); a != 0."""
    disc = b * b - 4 * a * c
    if disc < 0:
        return []
    if disc == 0:
        return [-b / (2 * a)]
    root = math.sqrt(disc)
    return sorted([(-b - root) / (2 * a), (-b + root) / (2 * a)])
