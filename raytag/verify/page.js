// raytag verify: the page's behaviour. The batch (tracks, tags, clips) is embedded as JSON by
// raytag/verify/page.py; the person's work is kept in localStorage under a key that names the
// batch, saved on every change, and exported as the decisions CSV that `raytag verify --apply`
// reads (raytag/verify/decisions.py: path,tags,decided,note,shown_tags).
"use strict";

const batch = JSON.parse(document.getElementById("raytag-batch").textContent);
const clips = JSON.parse(document.getElementById("raytag-clips").textContent);
const storageKey = "raytag-verify:" + batch.batch;
const vocabulary = batch.vocabulary;
const order = new Map(vocabulary.map((tag, i) => [tag, i]));
const $ = (id) => document.getElementById(id);
const player = $("player");

function initialState() {
  const tracks = {};
  for (const t of batch.tracks) tracks[t.path] = { tags: [...t.tags], decided: false, note: "" };
  return { current: 0, tracks };
}

function loadState() {
  const fresh = initialState();
  try {
    const saved = JSON.parse(localStorage.getItem(storageKey) || "null");
    if (saved && saved.tracks) {
      for (const path of Object.keys(fresh.tracks)) {
        if (saved.tracks[path]) fresh.tracks[path] = saved.tracks[path];
      }
      fresh.current = Math.min(Math.max(saved.current | 0, 0), batch.tracks.length - 1);
    }
  } catch (error) {
    console.warn("raytag verify: saved state unreadable, starting afresh", error);
  }
  return fresh;
}

let state = loadState();
let clipUrl = null;

function save() {
  try {
    localStorage.setItem(storageKey, JSON.stringify(state));
    $("saved").textContent = "saved in this browser";
  } catch (error) {
    $("saved").textContent = "NOT SAVED: " + error.message + " (export now)";
  }
}

const track = () => batch.tracks[state.current];
const decision = () => state.tracks[track().path];
const sorted = (tags) => [...tags].sort((a, b) => order.get(a) - order.get(b));

// Tags listed first for the current track (numbered for the keyboard): the tags it had, the
// ones the audit suspects, then any the person added.
function listedTags() {
  const t = track();
  const listed = [...t.tags];
  for (const s of t.suspects) if (!listed.includes(s.tag)) listed.push(s.tag);
  for (const tag of sorted(decision().tags)) if (!listed.includes(tag)) listed.push(tag);
  return listed;
}

function toggleTag(tag) {
  const d = decision();
  d.tags = d.tags.includes(tag) ? d.tags.filter((x) => x !== tag) : sorted([...d.tags, tag]);
  save();
  render();
}

function setDone(done) {
  decision().decided = done;
  save();
  render();
}

function go(index) {
  if (index < 0 || index >= batch.tracks.length || index === state.current) return;
  state.current = index;
  save();
  render();
  loadClip();
}

function loadClip() {
  if (clipUrl) URL.revokeObjectURL(clipUrl);
  const bytes = Uint8Array.from(atob(clips[state.current]), (c) => c.charCodeAt(0));
  clipUrl = URL.createObjectURL(new Blob([bytes], { type: "audio/ogg; codecs=opus" }));
  player.src = clipUrl;
}

function checkbox(tag, number, suspect) {
  const label = document.createElement("label");
  label.className = "tag" + (suspect ? " suspect" : "");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = decision().tags.includes(tag);
  box.dataset.tag = tag;
  box.addEventListener("change", () => toggleTag(tag));
  label.append(box);
  if (number !== null) {
    const key = document.createElement("kbd");
    key.textContent = number;
    label.append(key);
  }
  label.append(" " + tag);
  if (suspect) {
    const why = document.createElement("span");
    why.className = "why";
    why.textContent = ` audit: ${suspect.suspected} (p ${suspect.p_wrong.toFixed(2)})`;
    label.append(why);
  }
  return label;
}

// Tags named "group---tag" (MTG-Jamendo) or "group:tag" are listed under their group.
function groupOf(tag) {
  for (const separator of ["---", ":"]) {
    const cut = tag.indexOf(separator);
    if (cut > 0) return tag.slice(0, cut);
  }
  return "";
}

function renderVocabulary(listed) {
  const query = $("search").value.trim().toLowerCase();
  const box = $("vocabulary");
  box.replaceChildren();
  const groups = new Map();
  for (const tag of vocabulary) {
    if (listed.includes(tag) || (query && !tag.toLowerCase().includes(query))) continue;
    const group = groupOf(tag);
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(tag);
  }
  for (const [group, tags] of groups) {
    const section = document.createElement("div");
    section.className = "group";
    if (group) {
      const title = document.createElement("h4");
      title.textContent = group;
      section.append(title);
    }
    for (const tag of tags) section.append(checkbox(tag, null, null));
    box.append(section);
  }
  $("matches").textContent = query ? `${[...groups.values()].flat().length} matching` : "";
}

function renderList() {
  const list = $("tracks");
  list.replaceChildren();
  batch.tracks.forEach((t, i) => {
    const item = document.createElement("li");
    const d = state.tracks[t.path];
    item.className = (i === state.current ? "current " : "") + (d.decided ? "done" : "");
    item.textContent = `${d.decided ? "\u2713" : "\u00a0"} ${i + 1}. ${t.name}`;
    item.title = t.path;
    item.addEventListener("click", () => go(i));
    list.append(item);
  });
  const current = list.children[state.current];
  if (current) current.scrollIntoView({ block: "nearest" });
}

function render() {
  const t = track();
  const d = decision();
  const done = batch.tracks.filter((x) => state.tracks[x.path].decided).length;
  $("progress").textContent = `${done} of ${batch.tracks.length} checked`;
  $("bar").value = done;
  $("position").textContent = `track ${state.current + 1} of ${batch.tracks.length}`;
  $("name").textContent = t.name;
  $("path").textContent = t.path;
  $("reason").textContent = "picked as: " + t.reason;
  $("clip").textContent = t.clip.how;
  $("status").textContent = d.decided ? "checked" : "not checked yet";
  $("status").className = d.decided ? "done" : "";
  $("done").textContent = d.decided ? "Uncheck (d)" : "Mark checked (d)";
  if (document.activeElement !== $("note")) $("note").value = d.note;
  const listed = listedTags();
  const suspects = new Map(t.suspects.map((s) => [s.tag, s]));
  const box = $("listed");
  box.replaceChildren();
  listed.forEach((tag, i) => box.append(checkbox(tag, i < 10 ? String((i + 1) % 10) : null, suspects.get(tag))));
  if (!listed.length) box.textContent = "no tags: add any that you hear below";
  renderVocabulary(listed);
  renderList();
}

function csvField(value) {
  const text = String(value);
  return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

function decisionsCsv() {
  const lines = [batch.columns.join(",")];
  for (const t of batch.tracks) {
    const d = state.tracks[t.path];
    const row = { path: t.path, tags: sorted(d.tags).join(batch.separator), decided: d.decided ? "true" : "false",
                  note: d.note, shown_tags: t.tags.join(batch.separator) };
    lines.push(batch.columns.map((c) => csvField(row[c])).join(","));
  }
  return lines.join("\n") + "\n";
}

$("export").addEventListener("click", () => {
  $("export").href = "data:text/csv;charset=utf-8," + encodeURIComponent(decisionsCsv());
});
$("export").download = `decisions-${batch.batch}.csv`;
$("done").addEventListener("click", () => setDone(!decision().decided));
$("prev").addEventListener("click", () => go(state.current - 1));
$("next").addEventListener("click", () => go(state.current + 1));
$("search").addEventListener("input", () => renderVocabulary(listedTags()));
$("note").addEventListener("input", () => { decision().note = $("note").value; save(); });

$("search").addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    const first = $("vocabulary").querySelector("input[type=checkbox]");
    if (first) toggleTag(first.dataset.tag);
    $("search").value = "";
    renderVocabulary(listedTags());
    event.preventDefault();
  }
});

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "TEXTAREA"].includes(event.target.tagName) && event.target.type !== "checkbox";
  if (event.key === "Escape") { event.target.blur(); return; }
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  const control = ["BUTTON", "A"].includes(event.target.tagName);
  if (control && (event.key === "Enter" || event.key === " ")) return;  // the control's own action
  const key = event.key;
  if (key === "ArrowRight" || key === "j") go(state.current + 1);
  else if (key === "ArrowLeft" || key === "k") go(state.current - 1);
  else if (key === " " || key === "p") { if (player.paused) player.play(); else player.pause(); }
  else if (key === "d" || key === "Enter") {
    const marking = !decision().decided;
    setDone(marking);
    if (marking) go(state.current + 1);
  } else if (key === "/") $("search").focus();
  else if (key === "n") $("note").focus();
  else if (/^[0-9]$/.test(key)) {
    const tag = listedTags()[(Number(key) + 9) % 10];
    if (tag) toggleTag(tag);
  } else return;
  event.preventDefault();
});

$("batch").textContent = batch.batch;
$("bar").max = batch.tracks.length;
render();
loadClip();
