"""Two model families tried against the recommender on the UCI history: a prototype.

Not part of the engine: numpy, used to decide whether to build either (issue 22).
Each test month May-September 2011 is scored with statistics learned from every month
before it; cases are up to five distinct (query, other product) pairs per test basket of
two or more products, seeded, as in `reco_eval`'s rolling splits. "ours" approximates the
engine's list: recency-weighted (120 days), size-weighted, near-boosted co-occurrence
normalised by the query's best partner, plus names weighing `0.15 x (1 + 10 / orders)`
(idf-weighted word cosine), best sellers filling free slots. It is not the engine (its
tie-breaking, tokens and fill differ), so compare rows only with each other.

- `ranker`: a learned ranker over 11 features of each (query, candidate) pair - ours,
  names, names for thin queries, raw count, a 30-day memory, popularity, last month's
  popularity, confidence, rank in ours, the candidate's age, share of the query's
  baskets - a conditional logit (softmax over the candidates of a case, L2 1.0) fitted
  on the month before the test month with statistics from before that, so every test
  month is out of sample. Three feature sets.
- `embeddings`: item vectors from a truncated SVD (k 64) of the positive PMI of the
  weighted co-occurrence (the word2vec equivalent of Levy and Goldberg), their cosine
  added to ours at strength mu.

    python3 scripts/reco_learned.py ranker       # about 2 min
    python3 scripts/reco_learned.py embeddings   # about 3 min
"""
import csv, datetime, random, sys, re, math, pickle, os
import numpy as np, scipy.sparse as sp
from scipy.optimize import minimize
FILE = "../shared/data/uci-online-retail/online_retail_until_2011-09.csv"
NON = {"POST","DOT","M","BANK CHARGES","AMAZONFEE","CRUK","D","S","PADS","B","C2"}
def isp(c): return c not in NON and not c.startswith(("DCGS","gift_"))
orders = {}; olist = []; desc = {}
with open(FILE) as f:
    r = csv.reader(f); next(r)
    for inv, code, d, q, dt, _p, cust, _c in r:
        inv, code = inv.strip(), code.strip()
        if not inv or inv[0] in "CA" or int(q) <= 0 or not isp(code): continue
        if d.strip(): desc[code] = d.strip()
        if inv not in orders:
            orders[inv] = [datetime.datetime.strptime(dt, "%Y-%m-%d %H:%M:%S"), [], cust.strip()]
            olist.append(inv)
        if code not in orders[inv][1]: orders[inv][1].append(code)
items = sorted({c for i in olist for c in orders[i][1]}); idx = {c: k for k, c in enumerate(items)}
n = len(items)
E = datetime.datetime(2000, 1, 1)
# names: binary words, idf weights, cosine
words = {}
rows, cols = [], []
for c in items:
    ws = set(re.findall(r"[a-z0-9]+", desc.get(c, "").lower()))
    for w in ws:
        rows.append(idx[c]); cols.append(words.setdefault(w, len(words)))
X = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(words)))
df = np.asarray(X.sum(0)).ravel(); idf = np.log(n / np.maximum(df, 1))
Xw = X @ sp.diags(idf); nr = np.sqrt(np.asarray(Xw.multiply(Xw).sum(1)).ravel()); nr[nr == 0] = 1
Xw = sp.diags(1 / nr) @ Xw
S = (Xw @ Xw.T).toarray(); np.fill_diagonal(S, 0)

MONTHS = [(2010, 12)] + [(2011, m) for m in range(1, 10)]
def mstart(y, m): return datetime.datetime(y, m, 1)
def mkey(t): return (t.year, t.month)
CACHE = "/tmp/reco_learned_pieces.pkl"  # per-month statistics, reused between runs
if os.path.exists(CACHE):
    pieces = pickle.load(open(CACHE, "rb"))
else:
    pieces = {}
    for ym in MONTHS:
        r1, c1, vp, v120, v30 = [], [], [], [], []
        cnt = np.zeros(n); first = np.full(n, np.inf)
        for i in olist:
            t, basket, _ = orders[i]
            if mkey(t) != ym: continue
            d = (t - E).days
            w120 = 2 ** (d / 120) / len(basket); w30 = 2 ** ((d - 4000) / 30) / len(basket)
            ids = [idx[c] for c in basket]
            for k in ids:
                cnt[k] += 1; first[k] = min(first[k], d)
            ids = ids[:200]
            for x in range(len(ids)):
                for y in range(x + 1, len(ids)):
                    near = 5.0 if y - x <= 10 else 1.0
                    r1 += [ids[x], ids[y]]; c1 += [ids[y], ids[x]]
                    vp += [1, 1]; v120 += [w120 * near] * 2; v30 += [w30 * near] * 2
        mk = lambda v: sp.csr_matrix((v, (r1, c1)), shape=(n, n))
        pieces[ym] = dict(P=mk(vp), W=mk(v120), W30=mk(v30), cnt=cnt, first=first)
        print("piece", ym, flush=True)
    pickle.dump(pieces, open(CACHE, "wb"))

def model(cut):
    """Statistics from every month before `cut` (y, m)."""
    ms = [ym for ym in MONTHS if ym < cut]
    D = {k: sum(pieces[ym][k] for ym in ms) for k in ("P", "W", "W30", "cnt")}
    D["first"] = np.min([pieces[ym]["first"] for ym in ms], axis=0)
    D["recent"] = pieces[ms[-1]]["cnt"]
    D["best"] = [int(j) for j in np.argsort(-D["cnt"], kind="stable")[:60]]
    D["day"] = (mstart(*cut) - E).days
    return D

def cases(ym, seed):
    rng = random.Random(seed)
    out = []
    for i in olist:
        t, b, _ = orders[i]
        if mkey(t) != ym or len(b) < 2: continue
        b = sorted(b); pairs = set(); tries = 0
        while len(pairs) < min(5, len(b) * (len(b) - 1)) and tries < 50:
            tries += 1; pairs.add(tuple(rng.sample(b, 2)))
        out += [(idx[q], idx[h]) for q, h in sorted(pairs)]
    return out

def topk(v, k):
    k = min(k, int((v > 0).sum()))
    if k == 0: return np.array([], dtype=int)
    c = np.argpartition(-v, k - 1)[:k]
    return c[np.lexsort((c, -v[c]))]

NF = 11
def feats(D, q):
    """Candidates for q and their features; None when q was never bought."""
    if D["cnt"][q] == 0: return None
    w = D["W"][q].toarray().ravel(); w[q] = 0
    s = S[q].copy()
    wb = topk(w, 200); sb = topk(s, 200)
    cand = np.union1d(wb, sb)
    cand = cand[cand != q]
    if len(cand) == 0: return None
    wmax = w.max() or 1.0
    w30 = D["W30"][q].toarray().ravel(); w30max = w30.max() or 1.0
    p = D["P"][q].toarray().ravel()
    cq = D["cnt"][q]
    ours = w[cand] / wmax + 0.15 * (1 + 10 / cq) * s[cand]
    rank = np.empty(len(cand)); rank[np.lexsort((cand, -ours))] = np.arange(len(cand))
    cc = D["cnt"][cand]
    age = np.where(np.isfinite(D["first"][cand]), D["day"] - D["first"][cand], 0)
    F = np.column_stack([
        w[cand] / wmax,                     # 0 ours bought
        s[cand],                            # 1 name
        s[cand] / cq,                       # 2 name for thin queries
        np.log1p(p[cand]),                  # 3 raw count
        w30[cand] / w30max,                 # 4 short memory
        np.log1p(cc),                       # 5 popularity
        np.log1p(D["recent"][cand]),        # 6 last month's popularity
        p[cand] / np.maximum(cc, 1),        # 7 confidence c -> q
        1 / (1 + rank),                     # 8 rank in ours
        np.log1p(age) / 6,                  # 9 age
        np.log1p(p[cand]) / np.log1p(cq),  # 10 share of q's baskets
    ])
    return cand, F, ours

def build(D, cs):
    out = []
    for q, h in cs:
        f = feats(D, q)
        out.append((q, h, f))
    return out

def loss(wt, data, l2):
    tot = 0.0; g = np.zeros_like(wt)
    for F, y in data:
        z = F @ wt; z -= z.max(); e = np.exp(z); Z = e.sum(); pr = e / Z
        tot -= z[y] - math.log(Z)
        g -= F[y] - pr @ F
    tot += l2 * wt @ wt; g += 2 * l2 * wt
    return tot / len(data), g / len(data)

def train(built, mask, l2=1.0):
    data = []
    for q, h, f in built:
        if f is None: continue
        cand, F, _ = f
        pos = np.nonzero(cand == h)[0]
        if len(pos): data.append((F[:, mask], pos[0]))
    w0 = np.zeros(int(mask.sum())); w0[0] = 1.0
    res = minimize(loss, w0, args=(data, l2), jac=True, method="L-BFGS-B")
    return res.x

def fill(top, q, D):
    """Best sellers fill the free slots of a list of ten for query `q`."""
    for j in D["best"]:
        if len(top) >= 10: break
        if j != q and j not in top: top.append(j)


def hit(D, built, scorer):
    h10 = 0
    for q, h, f in built:
        if f is None:
            top = D["best"][:10]
        else:
            cand, F, ours = f
            sc = scorer(F, ours)
            order = np.lexsort((cand, -sc))
            top = [int(cand[j]) for j in order[:10]]
            fill(top, q, D)
        h10 += h in top
    return h10 / len(built)

def plain_hit(D, cs):
    h10 = 0
    for q, h in cs:
        if D["cnt"][q] == 0: top = D["best"][:10]
        else:
            p = D["P"][q].toarray().ravel(); p[q] = 0
            top = [int(j) for j in topk(p, 10)]
            fill(top, q, D)
        h10 += h in top
    return h10 / len(cs)



def run_ranker():
    MASKS = {
        "all-11": np.ones(NF, bool),
        "ours-3-learned": np.array([1, 1, 1] + [0] * 8, bool),
        "no-popularity": np.array([1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1], bool),
    }
    res = {"plain": [], "ours": []}
    for k in MASKS: res[k] = []
    for mi in range(4, 10):
        tm = (2011, mi); trm = (2011, mi - 1)
        Dt = model(tm); test = build(Dt, cases(tm, mi))
        Dr = model(trm); tr = build(Dr, cases(trm, 100 + mi))
        line = [str(mi), str(len(test))]
        v = plain_hit(Dt, [(q, h) for q, h, _ in test]); res["plain"].append(v); line.append(f"plain {v:.4f}")
        v = hit(Dt, test, lambda F, o: o); res["ours"].append(v); line.append(f"ours {v:.4f}")
        for k, m in MASKS.items():
            wt = train(tr, m)
            v = hit(Dt, test, lambda F, o, m=m, wt=wt: F[:, m] @ wt); res[k].append(v)
            line.append(f"{k} {v:.4f}")
            if k == "all-11": print("  w", np.round(wt, 2), flush=True)
        print(" ".join(line), flush=True)
    print("mean May-Sep", " ".join(f"{k} {np.mean(v[1:]):.4f}" for k, v in res.items()))


def run_embeddings():
    from scipy.sparse.linalg import svds
    def emb(D, k=64, shift=1.0):
        W = D["W"].tocsr().astype(float)
        tot = W.sum(); r = np.asarray(W.sum(1)).ravel(); r[r == 0] = 1
        W = W.tocoo()
        pmi = np.log(W.data * tot / (r[W.row] * r[W.col])) - np.log(shift)
        keep = pmi > 0
        M = sp.csr_matrix((pmi[keep], (W.row[keep], W.col[keep])), shape=W.shape)
        U, s_, Vt = svds(M, k=k)
        E_ = U * np.sqrt(s_)
        nr = np.linalg.norm(E_, axis=1); nr[nr == 0] = 1
        return E_ / nr[:, None]
    res = {}
    for mi in range(5, 10):
        tm = (2011, mi)
        Dt = model(tm); test = build(Dt, cases(tm, mi))
        Em = emb(Dt)
        line = [str(mi)]
        for mu in [0, 0.05, 0.1, 0.2, 0.4]:
            h10 = 0
            for q, h, f in test:
                if f is None: top = Dt["best"][:10]
                else:
                    cand, F, ours = f
                    s_ = ours + mu * (Em[cand] @ Em[q])
                    order = np.lexsort((cand, -s_))
                    top = [int(cand[j]) for j in order[:10]]
                    fill(top, q, Dt)
                h10 += h in top
            v = h10 / len(test); res.setdefault(mu, []).append(v); line.append(f"{mu}:{v:.4f}")
        print(" ".join(line), flush=True)
    print("mean", " ".join(f"{k}:{np.mean(v):.4f}" for k, v in res.items()))


if __name__ == "__main__":
    {"ranker": run_ranker, "embeddings": run_embeddings}[sys.argv[1] if len(sys.argv) > 1 else "ranker"]()
