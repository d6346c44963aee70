"""The Jinja2 template of the HTML checklist page, kept in Python so it ships with the code.

Self-contained on purpose: inline CSS, no script, no font, image or stylesheet from
anywhere, so the page can be archived with a run record and opened offline years later.
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drydock compliance checklist - {{ verdict | upper }} - {{ date }}</title>
<style>
:root { --pass:#1a7f37; --fail:#cf222e; --error:#8250df; --waived:#9a6700;
        --manual:#57606a; --unverified:#bc4c00; --line:#d0d7de; --soft:#f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color:#1f2328; margin:0; padding:24px 32px; background:#fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-top: 8px; border-top: 2px solid var(--line); }
h3 { font-size: 14px; margin: 16px 0 6px; }
.muted { color:#57606a; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-weight:600;
         font-size:12px; color:#fff; white-space:nowrap; }
.s-pass { background:var(--pass); } .s-fail { background:var(--fail); }
.s-error { background:var(--error); } .s-waived { background:var(--waived); }
.s-manual { background:var(--manual); } .s-unverified { background:var(--unverified); }
.verdict { font-size:16px; padding:3px 12px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { border:1px solid var(--line); padding:5px 8px; text-align:left; vertical-align:top; }
th { background:var(--soft); font-weight:600; }
td.id { white-space:nowrap; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
tr.row-fail td:first-child, tr.row-error td:first-child,
tr.row-unverified td:first-child { border-left:4px solid var(--fail); }
tr.row-waived td:first-child { border-left:4px solid var(--waived); }
tr.row-fail, tr.row-error, tr.row-unverified { background:#fff5f5; }
tr.row-waived { background:#fff8e5; }
ul { margin:0; padding-left:18px; }
li { overflow-wrap:anywhere; }
.evidence li { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size:12px; }
.waiver { color:var(--waived); }
.reasons li { color:var(--fail); }
.summary td:nth-child(2) { white-space:nowrap; }
details summary { cursor:pointer; font-weight:600; margin:8px 0; }
@media print { details { display:block; } }
</style>
</head>
<body>
<h1>Drydock compliance checklist
  <span class="badge verdict s-{{ verdict }}">{{ verdict | upper }}</span></h1>
<p class="muted">CIS Docker Benchmark 4.x and DISA Container Image Creation and Deployment
Guide 2.x, {{ date }}. Blocking: {{ policy.vulnerability_severity.value }}+ vulnerabilities
{%- if policy.ignore_unfixed %} with a fix{% endif %}, Dockle
{{ policy.dockle_severity.value }}+ (WARN/FATAL), failing mandatory controls.</p>
<ul class="provenance">{% for line in provenance %}<li>{{ line }}</li>{% endfor %}</ul>

<table class="summary">
<thead><tr><th>Image</th><th>Verdict</th><th>Controls</th><th>Blocking reasons</th></tr></thead>
<tbody>
{%- for v in images %}
<tr><td><a href="#{{ v.anchor }}">{{ v.verdict.image }}</a></td>
<td><span class="badge s-{{ v.verdict.status.value }}">{{ v.verdict.status.value }}</span></td>
<td>{{ v.counts }}</td><td>{{ v.verdict.reasons | length }}</td></tr>
{%- else %}
<tr><td colspan="4">No image was scanned: nothing is proven, the gate fails.</td></tr>
{%- endfor %}
</tbody>
</table>
{%- if expired_waivers %}
<h3>Expired waivers in waivers.yaml</h3>
<ul>{% for w in expired_waivers %}<li class="waiver">{{ w }}</li>{% endfor %}</ul>
{%- endif %}
{%- if unused_waivers %}
<h3>Waivers that matched nothing</h3>
<ul>{% for w in unused_waivers %}<li class="muted">{{ w }}</li>{% endfor %}</ul>
{%- endif %}

{%- for v in images %}
<section class="image" id="{{ v.anchor }}" data-image="{{ v.verdict.image }}">
<h2>{{ v.verdict.image }}
  <span class="badge s-{{ v.verdict.status.value }}">{{ v.verdict.status.value }}</span></h2>
{%- if v.verdict.digest %}<p class="muted">{{ v.verdict.digest }}</p>{% endif %}
<p class="muted os">{{ v.os }}</p>
{%- if v.verdict.reasons %}
<h3>Why it does not pass</h3>
<ul class="reasons">{% for r in v.verdict.reasons %}<li>{{ r }}</li>{% endfor %}</ul>
{%- endif %}
{%- if v.verdict.waived %}
<h3>Waived</h3>
<ul>{% for w in v.verdict.waived %}<li class="waiver">{{ w }}</li>{% endfor %}</ul>
{%- endif %}
{%- if v.verdict.expired_waivers %}
<h3>Expired waivers (no longer applied)</h3>
<ul>{% for w in v.verdict.expired_waivers %}<li class="waiver">{{ w }}</li>{% endfor %}</ul>
{%- endif %}
<table class="controls">
<thead><tr><th>Control</th><th>Title</th><th>Mandatory</th><th>Status</th>
<th>Evidence</th><th>Waivers</th></tr></thead>
<tbody>
{%- for r in v.verdict.controls %}
<tr class="control row-{{ r.status.value }}" id="{{ v.anchor }}--{{ r.control.id | lower }}"
    data-image="{{ v.verdict.image }}" data-control="{{ r.control.id }}"
    data-status="{{ r.status.value }}">
<td class="id">{{ r.control.id }}</td>
<td>{{ r.control.title }}</td>
<td>{{ "yes" if r.control.mandatory else "no" }}</td>
<td><span class="badge s-{{ r.status.value }}">{{ r.status.value }}</span></td>
<td><ul class="evidence">{% for e in r.evidence %}<li>{{ e }}</li>{% endfor %}</ul></td>
<td><ul>{% for w in r.waivers %}<li class="waiver">{{ w }}</li>{% endfor %}</ul></td>
</tr>
{%- endfor %}
</tbody>
</table>
{%- if v.findings %}
<details><summary>Findings ({{ v.findings | length }})</summary>
<table class="findings">
<thead><tr><th>Finding</th><th>Source</th><th>Severity</th><th>Package</th>
<th>Controls</th><th>Blocking</th><th>Waived</th></tr></thead>
<tbody>
{%- for af in v.findings %}
<tr><td class="id">{{ af.finding.id }}</td><td>{{ af.finding.source.value }}</td>
<td>{{ af.finding.severity.value }}</td>
<td>{{ af.finding.package }} {{ af.finding.installed_version }}
{%- if af.finding.fixed_version %} &rarr; {{ af.finding.fixed_version }}{% endif %}</td>
<td>{{ af.controls | join(", ") }}</td><td>{{ "yes" if af.blocking else "no" }}</td>
<td>{% if af.waived %}<span class="waiver">{{ af.waived_by }}</span>{% else %}no{% endif %}</td>
</tr>
{%- endfor %}
</tbody>
</table>
</details>
{%- endif %}
</section>
{%- endfor %}
</body>
</html>
"""
