"""The try-it page of `textgen serve`: one self-contained HTML document (no external assets)."""

from __future__ import annotations

import html
from pathlib import Path

_FORMS = {
    "seq2seq": """
<label for="text">Sources, one per line</label>
<textarea id="text" rows="6"></textarea>
<div class="row"><label>beam <input id="beam" type="number" min="1" max="64" placeholder="recipe"></label>
<label>n-best <input id="nbest" type="number" min="1" max="64" value="1"></label>
<button id="go">Translate</button></div>""",
    "lm": """
<label for="text">Prime</label>
<textarea id="text" rows="4"></textarea>
<div class="row"><label>length <input id="length" type="number" min="0" value="200"></label>
<label>temperature <input id="temperature" type="number" min="0" step="0.1" value="0.8"></label>
<label>top-k <input id="top_k" type="number" min="0" value="0"></label>
<label>seed <input id="seed" type="number" placeholder="random"></label>
<button id="go">Sample</button></div>""",
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>textgen serve: %(name)s</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:860px;margin:2em auto;padding:0 1em;
color:#1d2430;background:#fafafa}
h1{font-size:1.35em;margin:0 0 .2em}.meta{color:#5a6372;font-size:.9em;margin-bottom:1.2em}
code{background:#eef0f3;padding:.1em .35em;border-radius:4px}
label{display:block;font-weight:600;margin:.6em 0 .3em}.row label{display:inline-block;font-weight:400;margin-right:1em}
textarea{width:100%%;box-sizing:border-box;font:inherit;padding:.5em;border:1px solid #c6ccd5;border-radius:6px}
input{width:6em;font:inherit;padding:.2em .3em}
button{font:inherit;padding:.35em 1.2em;border:0;border-radius:6px;background:#2f6fdd;color:#fff;cursor:pointer}
button:disabled{background:#8aa8dc}
#out{margin-top:1.2em}.item{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:.5em .8em;
margin:.4em 0;white-space:pre-wrap}.src{color:#5a6372;font-size:.85em}.err{color:#b3261e}
.score{color:#5a6372;font-size:.85em;margin-right:.6em}
</style></head><body>
<h1>textgen serve</h1>
<div class="meta"><code>%(model)s</code> &middot; %(kind)s &middot; vocabulary %(vocab)s &middot; %(device)s
&middot; git %(commit)s &middot; <a href="/health">/health</a></div>
%(form)s
<div id="out"></div>
<script>
const KIND = "%(kind)s", $ = id => document.getElementById(id), out = $("out");
function show(cls, text, note) {
  const div = document.createElement("div"); div.className = "item " + cls;
  if (note) { const n = document.createElement("div"); n.className = "src"; n.textContent = note; div.append(n); }
  div.append(document.createTextNode(text)); out.append(div);
}
async function post(route, body) {
  const r = await fetch(route, {method: "POST", headers: {"Content-Type": "application/json"},
                                body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}
const num = id => $(id).value === "" ? null : Number($(id).value);
async function run() {
  $("go").disabled = true; out.textContent = "";
  try {
    if (KIND === "seq2seq") {
      const sources = $("text").value.split("\\n").filter(s => s.trim());
      const data = await post("/translate", {sources, beam: num("beam"), nbest: num("nbest")});
      data.translations.forEach((t, i) => {
        if (typeof t === "string") show("", t, sources[i]);
        else show("", t.map(h => (h.score === null ? "-inf" : h.score.toFixed(3)) + "  " + h.text)
                       .join("\\n"), sources[i]);
      });
    } else {
      const data = await post("/sample", {prime: $("text").value, length: num("length"),
        temperature: num("temperature"), top_k: num("top_k"), seed: num("seed")});
      show("", data.text);
    }
  } catch (e) { show("err", e.message); }
  $("go").disabled = false;
}
$("go").onclick = run;
const q = new URLSearchParams(location.search);
if (q.has("text")) { $("text").value = q.get("text"); if (q.get("run") === "1") run(); }
</script>
</body></html>
"""


def render_page(info: dict) -> str:
    """The try-it page: a form for this checkpoint's kind; ?text=...&run=1 fills it in (and runs it)."""
    vocab = " / ".join(f"{v:,}" for v in info["vocab"].values())
    return _PAGE % {
        "name": html.escape(Path(info["model"]).name),
        "model": html.escape(info["model"]),
        "kind": info["kind"],
        "vocab": vocab,
        "device": html.escape(info["device"]),
        "commit": html.escape(info["git_commit"][:12]),
        "form": _FORMS[info["kind"]],
    }
