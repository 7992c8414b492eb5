// Self-contained SVG charts for the report: lines over PPO steps, and grouped histograms. No
// scripts, no external fonts or styles, so the files open anywhere and embed in HTML as they are.

export interface Series {
  label: string;
  points: Array<[number, number]>;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const W = 460;
const H = 300;
const M = { left: 52, right: 14, top: 30, bottom: 74 };

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const label = (v: number) => (Math.abs(v) >= 1000 ? v.toExponential(1) : Number(v.toPrecision(3)).toString());

function frame(title: string, xLabel: string, yLabel: string, x: (v: number) => number, y: (v: number) => number, xt: number[], yt: number[], xText = label): string {
  const parts = [
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-family="sans-serif" font-size="13" font-weight="bold">${esc(title)}</text>`,
  ];
  for (const v of yt)
    parts.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 5}" y="${y(v) + 4}" text-anchor="end" font-family="sans-serif" font-size="10">${label(v)}</text>`,
    );
  for (const v of xt) parts.push(`<text x="${x(v)}" y="${H - M.bottom + 14}" text-anchor="middle" font-family="sans-serif" font-size="10">${esc(xText(v))}</text>`);
  parts.push(
    `<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - M.bottom + 30}" text-anchor="middle" font-family="sans-serif" font-size="11">${esc(xLabel)}</text>`,
    `<text x="12" y="${(M.top + H - M.bottom) / 2}" text-anchor="middle" font-family="sans-serif" font-size="11" transform="rotate(-90 12 ${(M.top + H - M.bottom) / 2})">${esc(yLabel)}</text>`,
  );
  return parts.join('');
}

function legend(labels: string[]): string {
  const per = Math.floor((W - M.left) / Math.max(1, Math.min(labels.length, 3)));
  return labels
    .map((l, i) => {
      const x = M.left + (i % 3) * per;
      const y = H - 18 + Math.floor(i / 3) * 13 - (labels.length > 3 ? 6 : 0);
      return `<rect x="${x}" y="${y - 8}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/><text x="${x + 14}" y="${y + 1}" font-family="sans-serif" font-size="10">${esc(l)}</text>`;
    })
    .join('');
}

const svg = (body: string) => `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${body}</svg>`;

export function lineChart(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const x0 = Math.min(...xs, 0);
  const x1 = Math.max(...xs, 1);
  let y0 = ys.length ? Math.min(...ys) : 0;
  let y1 = ys.length ? Math.max(...ys) : 1;
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = 0.05 * (y1 - y0);
  [y0, y1] = [y0 - pad, y1 + pad];
  const x = (v: number) => M.left + ((v - x0) / (x1 - x0)) * (W - M.left - M.right);
  const y = (v: number) => H - M.bottom - ((v - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  const lines = series
    .map((s, i) => {
      const d = s.points
        .filter((p) => Number.isFinite(p[1]))
        .map((p, k) => `${k ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`)
        .join('');
      return `<path d="${d}" fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.8"/>`;
    })
    .join('');
  return svg(frame(title, xLabel, yLabel, x, y, ticks(x0, x1), ticks(y0, y1)) + lines + legend(series.map((s) => s.label)));
}

/** Bars of each group's share of values per bin (bins given by their edges). */
export function histogram(title: string, xLabel: string, groups: Array<{ label: string; values: number[] }>, edges: number[]): string {
  const bins = edges.length - 1;
  const shares = groups.map((g) => {
    const counts = new Array<number>(bins).fill(0);
    for (const v of g.values) {
      let b = edges.findIndex((e, i) => i < bins && v >= e && v < edges[i + 1]);
      if (b < 0) b = v < edges[0] ? 0 : bins - 1;
      counts[b]++;
    }
    return counts.map((c) => c / Math.max(1, g.values.length));
  });
  const yMax = Math.max(0.05, ...shares.flat());
  const slot = (W - M.left - M.right) / bins;
  const barW = (slot * 0.8) / Math.max(1, groups.length);
  const x = (b: number) => M.left + b * slot + slot / 2;
  const y = (v: number) => H - M.bottom - (v / yMax) * (H - M.top - M.bottom);
  const bars = shares
    .map((s, g) =>
      s
        .map((v, b) => {
          const left = M.left + b * slot + slot * 0.1 + g * barW;
          return `<rect x="${left.toFixed(1)}" y="${y(v).toFixed(1)}" width="${barW.toFixed(1)}" height="${(H - M.bottom - y(v)).toFixed(1)}" fill="${COLORS[g % COLORS.length]}"/>`;
        })
        .join(''),
    )
    .join('');
  const binLabel = (b: number) => `${label(edges[b])}–${label(edges[b + 1])}`;
  return svg(
    frame(title, xLabel, 'share of responses', x, y, Array.from({ length: bins }, (_, b) => b), ticks(0, yMax), (b) => binLabel(b)) + bars + legend(groups.map((g) => g.label)),
  );
}
