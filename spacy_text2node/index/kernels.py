"""numba kernels of the lexical channel: query TF-IDF rows, best-string cosines, word
overlaps and the two-stage top-k retrieval. They sum in a fixed order so results do not
depend on the CPU."""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _load_row(dense, ptr, idx, vals, cur, j):  # pragma: no cover - numba
    """Make dense hold CSR row j instead of row cur (-1: none): row cur's columns back to
    zero, row j's set to its values (vals None: to 1)."""
    if cur >= 0:
        for y in range(ptr[cur], ptr[cur + 1]):
            dense[idx[y]] = 0
    for y in range(ptr[j], ptr[j + 1]):
        if vals is None:
            dense[idx[y]] = 1
        else:
            dense[idx[y]] = vals[y]


@njit(cache=True, nogil=True)
def _best_string_cosines(
    m_ptr, m_idx, m_val, q_ptr, q_idx, q_val, width, node_ptr, node_strings, nodes, rows, leave_out_exact, dense
):  # pragma: no cover - numba
    """Per pair p: the largest cosine between query rows[p] of Q and the strings of node
    nodes[p] (M's rows node_strings[node_ptr[node]:node_ptr[node + 1]]), and the first
    string that has it. The query row is scattered into a dense vector (kept while rows
    repeats: callers group the pairs of one query) and each string's row is read against
    it: float32 products summed in float64 in M's column order, as a merge of the two
    sorted rows would sum them, without the merge's branches. With leave_out_exact a
    cosine of at least 0.9999 counts as -1 (the query's own string).

    dense: (s_rows, s_scale, d_rows): int8 rows of the strings with a float32 scale each,
    and float32 rows of the queries (no rows: not computed): the largest product of
    query rows[p]'s row with the rows of the node's strings not left out is returned too
    (0 where none is), summed in float32 in column order.

    Returns (float32 cosines, -1 where the node has no strings; int64 strings; float32
    best products)."""
    s_rows, s_scale, d_rows = dense
    n = len(nodes)
    best = np.full(n, -1.0, dtype=np.float32)
    best_s = np.zeros(n, dtype=np.int64)
    best_d = np.zeros(n, dtype=np.float32)
    use_dense = s_rows.shape[0] > 0
    dim = s_rows.shape[1]
    dense_q = np.zeros(width, dtype=np.float32)
    cur = -1
    for p in range(n):
        j = rows[p]
        if j != cur:
            _load_row(dense_q, q_ptr, q_idx, q_val, cur, j)
            cur = j
        node = nodes[p]
        first = True
        first_d = True
        for t in range(node_ptr[node], node_ptr[node + 1]):
            st = node_strings[t]
            acc = 0.0
            for x in range(m_ptr[st], m_ptr[st + 1]):
                acc += m_val[x] * dense_q[m_idx[x]]
            sim = np.float32(acc)
            own = leave_out_exact and sim >= 0.9999
            if own:
                sim = np.float32(-1.0)
            if first or sim > best[p]:
                best[p] = sim
                best_s[p] = st
                first = False
            if use_dense and not own:
                dot = np.float32(0.0)
                for k in range(dim):
                    dot += np.float32(s_rows[st, k]) * d_rows[j, k]
                dot *= s_scale[st]
                if first_d or dot > best_d[p]:
                    best_d[p] = dot
                    first_d = False
    return best, best_s, best_d


@njit(cache=True, nogil=True)
def _word_pairs(w_ptr, w_idx, q_ptr, q_idx, word_idf, strings, valid, rows, width):  # pragma: no cover - numba
    """Word comparison of string strings[p] (W's row, sorted) and query rows[p] (Q's row,
    any order) for each valid pair p: the IDF of their shared words (float32, summed in
    W's order), and CSR structures of the string's words missing from the query (W's
    order) and of the query's words missing from the string (Q's order)."""
    n = len(strings)
    lo_cap, qo_cap = 0, 0
    for p in range(n):
        if valid[p]:
            lo_cap += w_ptr[strings[p] + 1] - w_ptr[strings[p]]
            qo_cap += q_ptr[rows[p] + 1] - q_ptr[rows[p]]
    overlap = np.zeros(n, dtype=np.float32)
    lo_ptr = np.zeros(n + 1, dtype=np.int64)
    qo_ptr = np.zeros(n + 1, dtype=np.int64)
    lo_idx = np.empty(lo_cap, dtype=np.int32)
    qo_idx = np.empty(qo_cap, dtype=np.int32)
    mark = np.zeros(width, dtype=np.int8)  # 1: a word of the current query; 2: also of the string
    cur = -1
    nl, nq = 0, 0
    for p in range(n):
        if valid[p]:
            j = rows[p]
            if j != cur:
                _load_row(mark, q_ptr, q_idx, None, cur, j)
                cur = j
            st = strings[p]
            ov = np.float32(0.0)
            for x in range(w_ptr[st], w_ptr[st + 1]):
                c = w_idx[x]
                if mark[c] != 0:
                    ov += word_idf[c]
                    mark[c] = 2
                else:
                    lo_idx[nl] = c
                    nl += 1
            overlap[p] = ov
            for y in range(q_ptr[j], q_ptr[j + 1]):
                c = q_idx[y]
                if mark[c] == 2:
                    mark[c] = 1
                else:
                    qo_idx[nq] = c
                    nq += 1
        lo_ptr[p + 1] = nl
        qo_ptr[p + 1] = nq
    return overlap, lo_ptr, lo_idx[:nl], qo_ptr, qo_idx[:nq]


@njit(cache=True, nogil=True)
def _tfidf_rows(ptr, ids, n_ids, n_vocab, idf, unk_sq):  # pragma: no cover - numba
    """Query TF-IDF rows from the n-gram ids of each query (ptr: offsets into ids; an id at
    or above n_vocab is an n-gram the vocabulary lacks). Counts in order of first
    occurrence, float64 weight count x IDF, squared norm over all n-grams (an unknown one
    adds unk_sq[count]); a row's known n-grams are written in reverse order of first
    occurrence. Returns indptr, indices, float32 weights and float32 norms (1 if zero)."""
    n = len(ptr) - 1
    count = np.zeros(n_ids, dtype=np.int64)
    order = np.empty(len(ids), dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices = np.empty(len(ids), dtype=np.int32)
    weights = np.empty(len(ids), dtype=np.float32)
    norms = np.ones(n, dtype=np.float32)
    nnz = 0
    for i in range(n):
        m = 0
        known = 0
        for p in range(ptr[i], ptr[i + 1]):
            g = ids[p]
            if count[g] == 0:
                order[m] = g
                m += 1
                if g < n_vocab:
                    known += 1
            count[g] += 1
        sq = 0.0
        pos = nnz + known
        for o in range(m):
            g = order[o]
            v = count[g]
            count[g] = 0
            if g >= n_vocab:
                sq += unk_sq[v]
            else:
                w = np.float64(v) * np.float64(idf[g])
                sq += w * w
                pos -= 1
                indices[pos] = g
                weights[pos] = w
        nnz += known
        indptr[i + 1] = nnz
        if sq > 0:
            norms[i] = np.sqrt(sq)
    return indptr, indices[:nnz], weights[:nnz], norms


@njit(cache=True, nogil=True)
def _product_row(q_ptr, q_idx, q_val, t_ptr, t_idx, t_val, i, acc, touched, cols, vals):  # pragma: no cover - numba
    """Row i of the sparse product Q @ T, for Q and T with positive entries (TF-IDF), as
    scipy's csr_matmat computes it: sums in acc's dtype in the order of Q's and T's
    entries, columns in reverse order of first touch. A column is new while its sum is
    still zero (no `seen` array to read per entry: half the random reads). acc: zeros
    (left zero); touched, cols, vals: buffers of T's width (touched: one more). Returns n
    and the largest value: the row is cols[:n], vals[:n]."""
    m = 0
    for p in range(q_ptr[i], q_ptr[i + 1]):
        j = q_idx[p]
        v = q_val[p]
        for r in range(t_ptr[j], t_ptr[j + 1]):
            s = t_idx[r]
            w = v * t_val[r]
            a = acc[s]
            # without a branch: s is written always and kept (m moves on) when it is new
            # and w no underflow (adding zero changes nothing)
            touched[m] = s
            m += (a == 0) & (w != 0)
            acc[s] = a + w
    hi = acc.dtype.type(0)
    for p in range(m - 1, -1, -1):
        s = touched[p]
        cols[m - 1 - p] = s
        vals[m - 1 - p] = acc[s]
        hi = max(hi, acc[s])
        acc[s] = 0
    return m, hi


@njit(cache=True, nogil=True)
def _shortlist(cols, vals, n, hi, kk, hist, keep_s, keep_v):  # pragma: no cover - numba
    """The columns whose value is at least the kk-th largest of vals[:n] (0 < kk < n;
    values in (0, hi]), in their order, written to keep_s (keep_v: work buffer). One pass
    makes a histogram of the values, a second collects the buckets at and above the one
    that holds the kk-th largest, and only that bucket is sorted. Returns the count."""
    nb = len(hist)
    scale = (nb - 1) / np.float64(hi)
    hist[:] = 0
    for p in range(n):
        hist[min(int(np.float64(vals[p]) * scale), nb - 1)] += 1
    above, b = 0, nb - 1
    while above + hist[b] < kk:
        above += hist[b]
        b -= 1
    bucket = np.empty(hist[b], dtype=vals.dtype)
    nc, nbk = 0, 0
    for p in range(n):
        g = min(int(np.float64(vals[p]) * scale), nb - 1)
        if g >= b:
            keep_s[nc] = cols[p]
            keep_v[nc] = vals[p]
            nc += 1
            if g == b:
                bucket[nbk] = vals[p]
                nbk += 1
    cut = np.sort(bucket)[nbk - (kk - above)]
    n_keep = 0
    for c in range(nc):  # every value tied with the kk-th largest stays
        if keep_v[c] >= cut:
            keep_s[n_keep] = keep_s[c]
            n_keep += 1
    return n_keep


@njit(cache=True, nogil=True, inline="always")
def _before(vals, a, b):  # pragma: no cover - numba
    """Whether position a comes before b in the stable order of vals, largest first."""
    return vals[a] > vals[b] or (vals[a] == vals[b] and a < b)


@njit(cache=True, nogil=True)
def _sift_down(heap, n, i, vals):  # pragma: no cover - numba
    x = heap[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and _before(vals, heap[c + 1], heap[c]):
            c += 1
        if not _before(vals, heap[c], x):
            break
        heap[i] = heap[c]
        i = c
    heap[i] = x


@njit(cache=True, nogil=True)
def _first_nodes(vals, strings, string_node, node_seen, stamp, k, out, o, heap):  # pragma: no cover - numba
    """The first k distinct nodes of strings in the order of a stable sort of vals, largest
    first (equal values keep their positions' order), written to out[o:]. A heap gives
    the strings in that order only as far as needed: k nodes are usually a small part of
    the strings. node_seen: a stamp per node, none equal to stamp yet; heap: a buffer of
    at least len(vals). Returns the count."""
    n = len(vals)
    for p in range(n):
        heap[p] = p
    for p in range(n // 2 - 1, -1, -1):
        _sift_down(heap, n, p, vals)
    n_out = 0
    while n > 0 and n_out < k:
        p = heap[0]
        n -= 1
        heap[0] = heap[n]
        _sift_down(heap, n, 0, vals)
        node = string_node[strings[p]]
        if node_seen[node] != stamp:
            node_seen[node] = stamp
            out[o + n_out] = node
            n_out += 1
    return n_out


@njit(cache=True, nogil=True)
def _top_nodes(
    q_ptr, q_idx, q_val, t_ptr, t_idx, t_val, m_ptr, m_idx, m_val, string_node, n_nodes, k, acc, pool
):  # pragma: no cover - numba
    """Lexical candidates of each query row of Q (CSR) against T (CSR, n-grams x strings,
    the pruned matrix) and M (CSR, strings x n-grams, the full matrix): the row of Q @ T
    (`_product_row`), its pool * k best strings (every string whose score equals the
    last stays), their full cosine Q[i] . M[s] (summed in float64 in M's column order),
    the first k distinct nodes of those by it (`_first_nodes`). Equal scores keep the
    product's column order, so the result does not depend on the CPU.
    acc: zeros, one per string. Returns indptr and nodes (int64)."""
    n_q = len(q_ptr) - 1
    n_str = len(string_node)
    touched = np.empty(n_str + 1, dtype=np.int64)
    cols = np.empty(n_str, dtype=np.int64)
    vals = np.empty(n_str, dtype=acc.dtype)
    keep_s = np.empty(n_str, dtype=np.int64)
    heap = np.empty(n_str, dtype=np.int64)
    keep_v = np.empty(n_str, dtype=np.float64)
    hist = np.zeros(2048, dtype=np.int64)
    q_dense = np.zeros(len(t_ptr) - 1, dtype=np.float64)
    node_seen = np.full(n_nodes, -1, dtype=np.int64)
    per_row = min(k, n_nodes)
    out = np.empty(n_q * min(per_row, 64), dtype=np.int64)
    out_ptr = np.zeros(n_q + 1, dtype=np.int64)
    o = 0
    for i in range(n_q):
        if o + per_row > len(out):
            grown = np.empty(max(2 * len(out), o + per_row), dtype=np.int64)
            grown[:o] = out[:o]
            out = grown
        nnz, hi = _product_row(q_ptr, q_idx, q_val, t_ptr, t_idx, t_val, i, acc, touched, cols, vals)
        kk = min(pool * k, nnz)
        if kk == nnz:  # all strings, in the product's order
            for p in range(nnz):
                keep_s[p] = cols[p]
            n_keep = nnz
        else:
            n_keep = _shortlist(cols, vals, nnz, hi, kk, hist, keep_s, keep_v)
        _load_row(q_dense, q_ptr, q_idx, q_val, i - 1, i)
        for p in range(n_keep):
            st = keep_s[p]
            v = 0.0
            for r in range(m_ptr[st], m_ptr[st + 1]):
                v += q_dense[m_idx[r]] * m_val[r]
            keep_v[p] = v
        n_out = _first_nodes(keep_v[:n_keep], keep_s[:n_keep], string_node, node_seen, i, k, out, o, heap)
        o += n_out
        out_ptr[i + 1] = o
    return out_ptr, out[:o]


@njit(cache=True, nogil=True, inline="always")
def _pair_before(score, ni, a, b):  # pragma: no cover - numba
    """Whether pair a comes before pair b: larger score first, then smaller node; a NaN
    score after every number (as a sort of the negated scores puts it)."""
    sa, sb = score[a], score[b]
    if sa != sa:
        return sb != sb and ni[a] < ni[b]
    if sb != sb:
        return True
    return sa > sb or (sa == sb and ni[a] < ni[b])


@njit(cache=True, nogil=True)
def _top_pairs(bounds, ni, score, k):  # pragma: no cover - numba
    """The k first pairs of each query in `_pair_before` order (query i's pairs are
    bounds[i]:bounds[i + 1]), by insertion into a list of at most k: a query has tens of
    candidates and k is small, so this is cheaper than sorting them all. Returns the
    chosen pair positions, the queries' runs one after another, and each run's length."""
    n_q = len(bounds) - 1
    taken = np.zeros(n_q, dtype=np.int64)
    total = 0
    for i in range(n_q):
        taken[i] = min(k, bounds[i + 1] - bounds[i])
        total += taken[i]
    sel = np.empty(total, dtype=np.int64)
    o = 0
    for i in range(n_q):
        n = 0
        cap = taken[i]
        for p in range(bounds[i], bounds[i + 1]):
            if n == cap and not _pair_before(score, ni, p, sel[o + n - 1]):
                continue
            j = n if n < cap else n - 1  # the last one drops out when the list is full
            while j > 0 and _pair_before(score, ni, p, sel[o + j - 1]):
                sel[o + j] = sel[o + j - 1]
                j -= 1
            sel[o + j] = p
            if n < cap:
                n += 1
        o += cap
    return sel, taken
