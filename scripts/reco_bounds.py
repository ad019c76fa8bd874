"""Where hit-rate@10 on the UCI history can go: an in-sample bound and item-model variants.

Not part of the engine: a numpy/scipy prototype used to decide what to build. Same
cleaning, split and cases as `examples/reco_eval.rs` (learn before the split date, hide
one item of each later basket, ask for another, chosen by the same hash).

    pip install numpy scipy
    python3 scripts/reco_bounds.py [2011-07-01]
"""
import csv
import datetime
import sys

import numpy as np
import scipy.sparse as sp

FILE = "../shared/data/uci-online-retail/online_retail_until_2011-09.csv"
NON_PRODUCT = {"POST", "DOT", "M", "BANK CHARGES", "AMAZONFEE", "CRUK", "D", "S", "PADS", "B", "C2"}


def is_product(code):
    return code not in NON_PRODUCT and not code.startswith(("DCGS", "gift_"))


def fnv(s):
    a = 0
    for b in s.encode():
        a = (a * 131 + b) & 0xFFFFFFFFFFFFFFFF
    return a


def main():
    split = sys.argv[1] if len(sys.argv) > 1 else "2011-07-01"
    orders, order_list = {}, []
    with open(FILE) as f:
        r = csv.reader(f)
        next(r)
        for inv, code, _desc, q, dt, _price, _cust, _country in r:
            inv, code = inv.strip(), code.strip()
            if not inv or inv[0] in "CA" or int(q) <= 0 or not is_product(code):
                continue
            if inv not in orders:
                orders[inv] = [dt, set()]
                order_list.append(inv)
            orders[inv][1].add(code)
    train = [i for i in order_list if orders[i][0] < split]
    test = [i for i in order_list if orders[i][0] >= split]
    cases = []
    for inv in test:
        items = sorted(orders[inv][1])
        if len(items) < 2:
            continue
        h, n = fnv("uci-" + inv), len(items)
        hidden, query = items[h % n], items[(h // n) % n]
        if query == hidden:
            query = items[(h % n + 1) % n]
        cases.append((query, hidden))
    items = sorted({c for i in train for c in orders[i][1]})
    idx = {c: k for k, c in enumerate(items)}

    def matrix(invoices):
        rows, cols = [], []
        for k, inv in enumerate(invoices):
            for c in orders[inv][1]:
                if c in idx:
                    rows.append(k)
                    cols.append(idx[c])
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(invoices), len(items)))

    X = matrix(train)
    sizes = np.asarray(X.sum(1)).ravel()
    days = np.array([
        (datetime.datetime.strptime(orders[i][0], "%Y-%m-%d %H:%M:%S") - datetime.datetime(2000, 1, 1)).days
        for i in train
    ])

    def hit(score, name):
        hits = 0
        for q, h in cases:
            if q not in idx or h not in idx:
                continue
            s = np.asarray(score(idx[q]), dtype=float).copy()
            s[idx[q]] = -np.inf
            hits += idx[h] in np.argpartition(-s, 10)[:10]
        print(f"{name}: {hits / len(cases):.4f}", flush=True)

    print(f"train {len(train)} baskets, test {len(test)}, cases {len(cases)}")
    pop = np.asarray(X.sum(0)).ravel()
    C = (X.T @ X).toarray()
    hit(lambda a: pop, "popularity")
    hit(lambda a: C[a] + 1e-9 * pop, "plain co-occurrence counts")
    w = (1 / sizes) * np.exp2((days - days.max()) / 120)
    Cw = (X.T @ sp.diags(w) @ X).toarray()
    W = np.asarray((sp.diags(w) @ X).sum(0)).ravel()
    ours = np.where(C >= 2, Cw / np.maximum(W, 1e-300) ** 0.15, 0)
    hit(lambda a: ours[a], "ours (1/n, 120-day half-life, beta 0.15, min support 2)")

    # EASE (Steck 2019): a closed-form item-item model; here fed one item at a time.
    n = len(items)
    for lam in (5, 20):
        G = Cw.copy()
        G[np.diag_indices(n)] += lam
        P = np.linalg.inv(G)
        B = -P / np.diag(P)
        B[np.diag_indices(n)] = 0
        hit(lambda a: B[a], f"EASE on the weighted Gram matrix, lambda {lam}")

    # Smoothing the association matrix through a low-rank approximation.
    Cw0 = Cw.copy()
    np.fill_diagonal(Cw0, 0)
    d = np.maximum(Cw0.sum(1), 1e-12)
    vals, vecs = np.linalg.eigh(Cw0 / np.sqrt(np.outer(d, d)))
    top = ours / np.maximum(ours.max(1, keepdims=True), 1e-300)
    k = 256
    L = (vecs[:, -k:] * vals[-k:]) @ vecs[:, -k:].T * np.sqrt(np.outer(d, d)) / np.maximum(W, 1e-300) ** 0.15
    L /= np.maximum(np.abs(L).max(1, keepdims=True), 1e-300)
    hit(lambda a: top[a] + 0.5 * L[a], f"ours + rank-{k} smoothing")

    # An in-sample bound: the same estimator learned from the test baskets themselves
    # (each case's own basket included), which no model learned from the past can beat
    # by much.
    Xt = matrix(test)
    st = np.maximum(np.asarray(Xt.sum(1)).ravel(), 1)
    Ct = (Xt.T @ sp.diags(1 / st) @ Xt).toarray()
    hit(lambda a: Ct[a], "in-sample bound (learned from the test baskets)")


if __name__ == "__main__":
    main()
