/* bsmeth report: sortable, filterable, searchable tables; curation of clones; a read's alignment and
   chromatogram on demand.  Offline, no library.  Without this script the page is complete, only static. */
(function () {
  "use strict";
  const $ = (s, r) => (r || document).querySelector(s);
  const $$ = (s, r) => Array.from((r || document).querySelectorAll(s));
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k in e && typeof v !== "string") e[k] = v; else e.setAttribute(k, v);
    }
    if (text !== undefined) e.textContent = text;
    return e;
  };

  /* ---------- numbers as the tables show them ("3.1 × 10-9", "45 (5/11)", "∞", "+2.50") ---------- */
  function sortKey(text) {
    const t = text.trim().replace("−", "-");
    if (t === "" || t === "–" || t === "n/a") return null;
    let m = /^([-+]?\d*\.?\d+(?:e[-+]?\d+)?)\s*×\s*10\s*([-+]?\d+)/i.exec(t);
    if (m) return parseFloat(m[1]) * Math.pow(10, parseInt(m[2], 10));
    if (/^[-+]?∞/.test(t)) return t[0] === "-" ? -Infinity : Infinity;
    if (/^< ?10/.test(t)) return 0;
    m = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?/i.exec(t);
    return m ? parseFloat(m[0]) : t.toLowerCase();
  }
  function compare(a, b) {
    if (a === null) return b === null ? 0 : 1;
    if (b === null) return -1;
    const na = typeof a === "number", nb = typeof b === "number";
    if (na && nb) return a - b;
    if (na) return -1;
    if (nb) return 1;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function numericTest(spec) { /* ">0.9", "<= 5", "=3" on a numeric column */
    const m = /^(<=|>=|<|>|=)\s*([-+]?\d*\.?\d+(?:e[-+]?\d+)?)$/i.exec(spec.trim());
    if (!m) return null;
    const x = parseFloat(m[2]);
    return (v) => typeof v === "number" && ({"<": v < x, ">": v > x, "<=": v <= x, ">=": v >= x, "=": v === x})[m[1]];
  }

  /* ---------- tables: sort (click a header), search, filter per column, pages of 100 rows ---------- */
  const PAGE = 100;
  function enhance(table) {
    const head = table.tHead && table.tHead.rows[0];
    const body = table.tBodies[0];
    if (!head || !body) return;
    const rows = Array.from(body.rows);
    let current = rows.slice();
    const ncol = head.cells.length;
    const big = table.classList.contains("big");
    const text = (r, c) => (r.cells[c] ? r.cells[c].textContent : "");
    const keys = new Map();
    const key = (r, c) => {
      let k = keys.get(r);
      if (!k) { k = []; keys.set(r, k); }
      if (!(c in k)) k[c] = sortKey(text(r, c));
      return k[c];
    };
    const filters = new Array(ncol).fill(null);
    let search = "", page = 0, all = false;
    const count = el("span", {class: "count"});
    const pager = el("span", {class: "pager"});
    const prev = el("button", {type: "button", "aria-label": "previous rows"}, "‹");
    const next = el("button", {type: "button", "aria-label": "next rows"}, "›");
    const showAll = el("button", {type: "button"}, "show all");
    const where = el("span");
    pager.append(prev, where, next, showAll);
    if (rows.length > 10) {
      const bar = el("div", {class: "toolbar"});
      if (table.id) bar.dataset.for = table.id;
      const box = el("input", {type: "search", placeholder: "search all columns", "aria-label": "search the table"});
      const clear = el("button", {type: "button"}, "clear filters");
      bar.append(box, count, clear);
      if (big) bar.append(pager);
      const holder = table.parentElement.classList.contains("scroll") ? table.parentElement : table;
      holder.parentElement.insertBefore(bar, holder);
      /* a second header row: a choice for columns of few values, else a text filter (numbers: >0.9, <=5) */
      const frow = el("tr", {class: "filters"});
      for (let c = 0; c < ncol; c++) {
        const th = el("th");
        const values = new Set();
        let numeric = 0;
        for (const r of rows) {
          const v = text(r, c).trim();
          values.add(v);
          if (typeof key(r, c) === "number") numeric++;
          if (values.size > 12) break;
        }
        let input;
        if (values.size <= 12 && numeric < rows.length / 2) {
          input = el("select", {"aria-label": "filter " + head.cells[c].textContent});
          input.append(el("option", {value: ""}, "all"));
          for (const v of Array.from(values).sort()) input.append(el("option", {value: v}, v === "" ? "(empty)" : v));
          input.addEventListener("change", () => {
            filters[c] = input.value === "" ? null : ["eq", input.value];
            apply(true);
          });
        } else {
          input = el("input", {type: "text", placeholder: "filter", "aria-label": "filter " + head.cells[c].textContent});
          input.addEventListener("input", () => {
            const v = input.value.trim();
            const t = numericTest(v);
            filters[c] = v === "" ? null : t ? ["num", t] : ["has", v.toLowerCase()];
            apply(true);
          });
        }
        th.append(input);
        frow.append(th);
      }
      table.tHead.append(frow);
      box.addEventListener("input", () => { search = box.value.trim().toLowerCase(); apply(true); });
      clear.addEventListener("click", () => {
        filters.fill(null); search = ""; box.value = "";
        for (const i of $$("input,select", frow)) i.value = "";
        apply(true);
      });
    }
    const hide = (r, h) => { if (r.hidden !== h) r.hidden = h; };
    function apply(first) {
      if (first) page = 0;
      const matches = [];
      for (const r of current) {
        let ok = true;
        for (let c = 0; c < ncol && ok; c++) {
          const f = filters[c];
          if (!f) continue;
          if (f[0] === "eq") ok = text(r, c).trim() === f[1];
          else if (f[0] === "num") ok = f[1](key(r, c));
          else ok = text(r, c).toLowerCase().includes(f[1]);
        }
        if (ok && search) ok = r.textContent.toLowerCase().includes(search);
        if (ok) matches.push(r); else hide(r, true);
      }
      const pages = Math.max(1, Math.ceil(matches.length / PAGE));
      page = Math.min(page, pages - 1);
      const paged = big && !all;
      const lo = paged ? page * PAGE : 0, hi = paged ? lo + PAGE : matches.length;
      matches.forEach((r, k) => hide(r, k < lo || k >= hi));
      count.textContent = (matches.length === rows.length ? rows.length : matches.length + " of " + rows.length) +
        " rows";
      where.textContent = paged ? " " + (matches.length ? lo + 1 : 0) + "–" + Math.min(hi, matches.length) + " " : " ";
      prev.disabled = !paged || page === 0;
      next.disabled = !paged || hi >= matches.length;
      showAll.textContent = all ? "pages of " + PAGE : "show all";
    }
    prev.addEventListener("click", () => { page--; apply(false); });
    next.addEventListener("click", () => { page++; apply(false); });
    showAll.addEventListener("click", () => { all = !all; apply(true); });
    const order = new Map(rows.map((r, i) => [r, i]));
    Array.from(head.cells).forEach((th, c) => {
      th.tabIndex = 0;
      const sort = () => {
        const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        for (const h of head.cells) h.removeAttribute("aria-sort");
        th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
        current = rows.slice().sort((a, b) => {
          const ka = key(a, c), kb = key(b, c);
          if (ka === null || kb === null) return compare(ka, kb) || order.get(a) - order.get(b);
          return dir * compare(ka, kb) || order.get(a) - order.get(b);
        });
        body.append(...current);
        apply(true);
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
    });
    apply(true);
    table.classList.add("js");
    table.bsm = {apply, page: (k) => { page = k; apply(false); }};
  }

  /* ---------- packed data: base64 of zlib-deflated bytes, unpacked on first use ---------- */
  const cache = new Map();
  async function unpack(node) {
    if (!cache.has(node)) {
      cache.set(node, (async () => {
        if (typeof DecompressionStream === "undefined")
          throw new Error("this browser cannot unpack the embedded data (needs Chrome 80, Firefox 113 or Safari 16.4)");
        const raw = atob(node.textContent.trim());
        const bytes = new Uint8Array(raw.length);
        for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
        const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
        return new Uint8Array(await new Response(stream).arrayBuffer());
      })());
    }
    return cache.get(node);
  }
  const unpackJSON = async (id) => JSON.parse(new TextDecoder().decode(await unpack(document.getElementById(id))));
  const traceSets = new Map();
  async function traces(amplicon) {
    if (!traceSets.has(amplicon)) {
      traceSets.set(amplicon, (async () => {
        const nodes = $$("script.bsm-traces");
        const node = nodes.find((n) => n.dataset.amplicon === amplicon) || (nodes.length === 1 ? nodes[0] : null);
        if (!node) return null;
        const buf = await unpack(node);
        const len = new DataView(buf.buffer, buf.byteOffset).getUint32(0, true);
        const index = JSON.parse(new TextDecoder().decode(buf.subarray(4, 4 + len)));
        return {index, data: buf.subarray(4 + len)};
      })());
    }
    return traceSets.get(amplicon);
  }

  /* ---------- curation ---------- */
  const idx = JSON.parse(($("#bsm-index") || {textContent: "null"}).textContent);
  const readsTable = $("#reads");
  const EXCL = "excluded_by_user";
  const state = {used: [], initial: [], notes: new Map(), boxes: []};
  function curatable(r) { return r[3] === 1 || r[4] === EXCL; }
  function setupCuration() {
    if (!idx || !readsTable) return;
    const rows = Array.from(readsTable.tBodies[0].rows);
    const head = readsTable.tHead.rows[0];
    const th = el("th", {title: "use this clone in the results (untick to exclude it)"}, "use");
    head.insertBefore(th, head.firstChild);
    idx.reads.forEach((r, i) => {
      const row = rows[i];
      row.dataset.i = i;
      const td = el("td");
      const box = el("input", {type: "checkbox", "aria-label": "use " + r[0]});
      box.checked = r[3] === 1;
      box.disabled = !curatable(r);
      box.title = box.disabled ? "excluded by QC (" + r[4] + "): change the threshold to keep it" : "use this clone";
      box.dataset.i = i;
      const mark = el("span", {hidden: true}, box.checked ? "yes" : "no"); /* text for search, sort, filter */
      td.append(box, mark);
      row.insertBefore(td, row.firstChild);
      state.used[i] = box.checked;
      state.initial[i] = box.checked;
      state.boxes[i] = box;
    });
    readsTable.addEventListener("change", (e) => {
      const box = e.target;
      if (box.type !== "checkbox" || box.dataset.i === undefined) return;
      setUsed(+box.dataset.i, box.checked);
    });
    const bar = $("#curation");
    bar.hidden = false;
    bar.append(el("span", {id: "curation-status"}),
      el("button", {type: "button", id: "download-curation"}, "Download curation.tsv"),
      el("button", {type: "button", id: "reset-curation"}, "Reset to the run"));
    $("#download-curation").addEventListener("click", download);
    $("#reset-curation").addEventListener("click", () => { state.initial.forEach((u, i) => setUsed(i, u)); });
    for (const t of $$("table.samples")) {
      const h = t.tHead.rows[0];
      for (const [name, tip] of [["clones (page)", "clones used with this page's ticks"],
                                 ["pooled % (page)", "methylated / called CpGs of the ticked clones"],
                                 ["mean clone % (page)", "mean of per-clone % of the ticked clones (the unit of the tests)"]])
        h.append(el("th", {title: tip}, name));
      for (const row of t.tBodies[0].rows) for (let k = 0; k < 3; k++) row.append(el("td", {class: "n live"}));
    }
    update(true);
  }
  function setUsed(i, used) {
    state.used[i] = used;
    const box = state.boxes[i];
    box.checked = used;
    box.nextSibling.textContent = used ? "yes" : "no";
    update(false);
  }
  function sampleNumbers() { /* (sample, amplicon) -> [clones, M, U, sum of fractions, clones with calls] */
    const out = new Map();
    idx.reads.forEach((r, i) => {
      if (!state.used[i] || !curatable(r)) return;
      const k = r[1] + "/" + r[2];
      const v = out.get(k) || [0, 0, 0, 0, 0];
      v[0]++; v[1] += r[5]; v[2] += r[6];
      if (r[5] + r[6] > 0) { v[3] += r[5] / (r[5] + r[6]); v[4]++; }
      out.set(k, v);
    });
    return out;
  }
  function update(first) {
    const nums = sampleNumbers();
    for (const t of $$("table.samples")) {
      const a = idx.amplicons.indexOf(t.dataset.amplicon);
      for (const row of t.tBodies[0].rows) {
        const s = idx.samples.indexOf(row.cells[0].textContent);
        const v = nums.get(s + "/" + a) || [0, 0, 0, 0, 0];
        const vals = [String(v[0]), v[1] + v[2] ? (100 * v[1] / (v[1] + v[2])).toFixed(2) : "",
                      v[4] ? (100 * v[3] / v[4]).toFixed(2) : ""];
        const cells = Array.from(row.cells).slice(-3);
        cells.forEach((c, k) => {
          if (first) c.dataset.initial = vals[k];
          c.textContent = vals[k];
          c.classList.toggle("changed", c.dataset.initial !== vals[k]);
        });
      }
    }
    const excluded = state.used.filter((u, i) => !u && curatable(idx.reads[i])).length;
    const changed = state.used.filter((u, i) => u !== state.initial[i]).length;
    $("#curation-status").textContent = excluded + " clone" + (excluded === 1 ? "" : "s") +
      " excluded by hand" + (changed ? " (" + changed + " changed in this page: download curation.tsv and rerun " +
      "with --curation to apply)" : "");
  }
  function tsvCell(s) { /* as bsmeth's table writer: formula-safe, quoted when needed */
    s = String(s);
    if (s && (s[0] === "'" || (/^[=+\-@\t\r]/.test(s) && s.length > 1 && !/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s))))
      s = "'" + s;
    return /[\t\n\r"]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function curationText() {
    const lines = ["read\tdecision\tnote"];
    idx.reads.forEach((r, i) => {
      if (!curatable(r)) return;
      const note = state.notes.get(i) || "";
      if (!state.used[i]) lines.push([r[0], "exclude", note].map(tsvCell).join("\t"));
      else if (r[4] === EXCL || state.notes.has(i)) lines.push([r[0], "include", note].map(tsvCell).join("\t"));
    });
    return lines.join("\n") + "\n";
  }
  function download() {
    const a = el("a", {download: "curation.tsv"});
    a.href = URL.createObjectURL(new Blob([curationText()], {type: "text/tab-separated-values"}));
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
  }

  /* ---------- a read on demand: calls, alignment, chromatogram at every CpG ---------- */
  const COLOURS = {A: "#009E73", C: "#0072B2", G: "#000000", T: "#D55E00"};
  async function openRead(i) {
    const r = idx.reads[i];
    const rid = r[0], amplicon = idx.amplicons[r[2]];
    const dlg = $("#viewer"), body = $("#viewer-body");
    body.replaceChildren();
    const row = readsTable.querySelector('tr[data-i="' + i + '"]');
    const cols = Array.from(readsTable.tHead.rows[0].cells).map((c) => c.textContent);
    const info = el("dl");
    for (const name of ["sample", "amplicon", "status", "reason", "detail", "orientation", "conversion_pct",
                        "identity_pct", "methylation_pct", "duplicate_of", "genotype", "mixed_sites"]) {
      const c = cols.indexOf(name);
      const v = c >= 0 && row ? row.cells[c].textContent : "";
      if (v) info.append(el("dt", {}, name), el("dd", {}, v));
    }
    body.append(el("h2", {id: "viewer-title"}, rid), info);
    if (curatable(r)) {
      const p = el("p");
      const box = el("input", {type: "checkbox", id: "viewer-use"});
      box.checked = state.used[i];
      box.addEventListener("change", () => setUsed(i, box.checked));
      const note = el("input", {type: "text", id: "viewer-note", size: 50, placeholder: "note for curation.tsv"});
      note.value = state.notes.get(i) || "";
      note.addEventListener("input", () => { if (note.value) state.notes.set(i, note.value); else state.notes.delete(i); });
      p.append(box, el("label", {for: "viewer-use"}, " use this clone "), note);
      body.append(p);
    }
    const calls = el("div"), aln = el("div"), tr = el("div", {id: "viewer-trace"});
    body.append(el("h3", {}, "CpG calls"), calls, el("h3", {}, "Chromatogram at each CpG"), tr,
                el("h3", {}, "Alignment"), aln);
    if (!dlg.open) dlg.showModal();
    try {
      const all = await unpackJSON("bsm-calls");
      const c = all[rid];
      if (!c) calls.append(el("p", {class: "note"}, "No CpG calls: the read did not align to an amplicon."));
      else showCalls(calls, c);
    } catch (e) { calls.append(el("p", {class: "warn"}, String(e.message || e))); }
    try {
      const blocks = await unpackJSON("bsm-alignments");
      aln.append(blocks[rid] ? el("pre", {}, blocks[rid]) : el("p", {class: "note"}, "No alignment (not aligned)."));
    } catch (e) { aln.append(el("p", {class: "warn"}, String(e.message || e))); }
    try {
      const t = await traces(amplicon);
      const meta = t && t.index[rid];
      if (!meta) tr.append(el("p", {class: "note"}, "No chromatogram embedded for this read (see the note above " +
                                    "the read table: FASTA input, trace file not found, or over the page's budget)."));
      else drawTrace(tr, meta, t.data);
    } catch (e) { tr.append(el("p", {class: "warn"}, String(e.message || e))); }
  }
  function showCalls(node, c) {
    const strip = el("p", {class: "strip"});
    for (let k = 0; k < c.call.length; k++) {
      const s = el("span", {class: c.call[k], title: "CpG " + c.cpg[k] + (c.why[k] ? ": " + c.why[k] : "")}, c.call[k]);
      strip.append(s);
    }
    node.append(strip);
    const fields = ["cpg", "call", "why", "base", "qual", "c_frac", "trace_flag"]
      .filter((f) => f in c);
    const t = el("table");
    const h = el("tr");
    for (const f of fields) h.append(el("th", {}, f));
    t.append(el("thead"), el("tbody"));
    t.tHead.append(h);
    for (let k = 0; k < c.cpg.length; k++) {
      const r = el("tr");
      for (const f of fields) {
        const v = f === "call" ? c.call[k] : c[f][k];
        r.append(el("td", typeof v === "number" ? {class: "n"} : {}, v === null || v === undefined ? "" : String(v)));
      }
      t.tBodies[0].append(r);
    }
    const d = el("details");
    d.append(el("summary", {}, "every CpG: base, quality, peak evidence"), t);
    node.append(d);
  }
  function decode(meta, data) {
    const view = data.subarray(meta.off);
    const peaks = new Array(meta.nb);
    let p = 0;
    for (let k = 0; k < meta.nb; k++) { p += view[2 * k] | (view[2 * k + 1] << 8); peaks[k] = p; }
    const ch = {};
    const base = 2 * meta.nb;
    "ACGT".split("").forEach((b, j) => {
      const out = new Uint8Array(meta.n);
      let v = 0;
      for (let k = 0; k < meta.n; k++) { v = (v + view[base + j * meta.n + k]) & 255; out[k] = v; }
      ch[b] = out;
    });
    return {peaks, ch};
  }
  function drawTrace(node, meta, data) {
    const {peaks, ch} = decode(meta, data);
    const strong = meta.o === "-" ? "GA" : "CT";
    node.append(el("p", {class: "note"}, meta.o === "-" ?
      "The read shows the reverse complement of the amplified strand: a CpG's C/T reads as G/A (black/green), in read order." :
      "The read shows the amplified strand: a CpG's C/T are the blue/red channels."));
    const cells = el("div", {class: "cells"});
    const W = 190, H = 124, dpr = window.devicePixelRatio || 1;
    for (const [cpg, i, call] of meta.cpg) {
      const cv = el("canvas", {width: W * dpr, height: H * dpr, title: "CpG " + cpg + ": " + call});
      cv.style.width = W + "px"; cv.style.height = H + "px";
      cv.dataset.cpg = cpg;
      const g = cv.getContext("2d");
      g.scale(dpr, dpr);
      const lo = Math.max(i - 5, 0), hi = Math.min(i + 5, meta.nb - 1);
      const x0 = Math.max(peaks[lo] - 3, 0), x1 = Math.min(peaks[hi] + 3, meta.n - 1);
      let top = 1;
      for (const b of "ACGT") for (let x = x0; x <= x1; x++) top = Math.max(top, ch[b][x]);
      const top0 = 16, h = 80, baseY = top0 + h;
      const sx = (x) => 2 + (x - x0) / Math.max(1, x1 - x0) * (W - 4);
      const half = Math.max(1, (peaks[Math.min(i + 1, meta.nb - 1)] - peaks[Math.max(i - 1, 0)]) / 4);
      g.fillStyle = "#F8F3A8";
      g.fillRect(sx(peaks[i] - half), top0 - 2, sx(peaks[i] + half) - sx(peaks[i] - half), h + 20);
      g.fillStyle = "#222"; g.font = "11px system-ui, sans-serif"; g.textAlign = "center";
      g.fillText("CpG " + cpg + ": " + call, W / 2, 11);
      for (const b of "ACGT") {
        g.strokeStyle = COLOURS[b];
        g.globalAlpha = strong.includes(b) ? 1 : 0.45;
        g.lineWidth = strong.includes(b) ? 1.3 : 0.8;
        g.beginPath();
        for (let x = x0; x <= x1; x++) {
          const y = baseY - ch[b][x] / top * h;
          if (x === x0) g.moveTo(sx(x), y); else g.lineTo(sx(x), y);
        }
        g.stroke();
      }
      g.globalAlpha = 1;
      g.strokeStyle = "#999"; g.lineWidth = 0.5;
      g.beginPath(); g.moveTo(0, baseY + 0.5); g.lineTo(W, baseY + 0.5); g.stroke();
      for (let k = lo; k <= hi; k++) {
        const letter = meta.seq[k];
        g.fillStyle = COLOURS[letter] || "#777";
        g.font = (k === i ? "bold " : "") + "10px ui-monospace, monospace";
        g.fillText(letter, sx(peaks[k]), baseY + 13);
      }
      cells.append(cv);
    }
    node.append(cells);
  }

  /* ---------- start ---------- */
  function start() {
    setupCuration();
    for (const t of $$("table.data")) enhance(t);
    if (readsTable) {
      readsTable.addEventListener("click", (e) => {
        const a = e.target.closest("a.rd");
        if (!a) return;
        e.preventDefault();
        openRead(+a.closest("tr").dataset.i);
      });
    }
    document.documentElement.dataset.ready = "1";
  }
  start();
})();
