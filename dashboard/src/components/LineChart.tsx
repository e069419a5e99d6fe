// A small line chart drawn as inline SVG, at the pixel width of its container (so text stays readable on a phone):
// y axis with nice ticks and the measurement's name and unit, x axis with time ticks, the line broken where readings
// are missing, and a hover/touch read-out of the nearest point.
import { useMemo, useState, type PointerEvent } from 'react';
import { fmtDateTime, fmtNumber, unitText, unitTitle } from '../format';
import { useWidth } from '../hooks';

export interface ChartPoint {
  readonly ts: number;
  readonly value: number;
}

export interface LineChartProps {
  readonly title: string;
  /** The SenML code (`Cel`): shown as people write it (`°C`), the code in a tooltip. Points come already scaled. */
  readonly unit?: string | undefined;
  readonly points: readonly ChartPoint[];
  readonly from: number;
  readonly to: number;
  /** Expected spacing of points (ms); a bigger gap breaks the line. */
  readonly step: number;
  readonly height?: number;
}

const M = { top: 12, right: 14, bottom: 36, left: 56 };

/** Round tick values covering [lo, hi], about `count` of them. */
export function niceTicks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm >= 5 ? 10 : norm >= 2 ? 5 : norm >= 1 ? 2 : 1) * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

const SEC = 1000;
const MIN = 60_000;
const HOUR = 60 * MIN;
const TIME_STEPS = [10 * SEC, 15 * SEC, 30 * SEC, MIN, 2 * MIN, 5 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, 24 * HOUR, 2 * 24 * HOUR];

function timeTicks(from: number, to: number, maxTicks: number): number[] {
  const span = to - from;
  const step = TIME_STEPS.find((s) => span / s <= maxTicks) ?? 7 * 24 * HOUR;
  // Align to the local clock (a 6 h step ticks at 00:00, 06:00, …).
  const offset = new Date(from).getTimezoneOffset() * MIN;
  const out: number[] = [];
  for (let t = Math.ceil((from - offset) / step) * step + offset; t <= to; t += step) out.push(t);
  return out;
}

function timeLabel(t: number, span: number): string {
  const d = new Date(t);
  const hm = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  // Minutes of data (the chart fits the data's range): seconds matter.
  if (span <= 10 * MIN) return `${hm}:${String(d.getSeconds()).padStart(2, '0')}`;
  if (span <= 36 * HOUR) return hm;
  return `${d.getDate()}/${d.getMonth() + 1} ${hm}`;
}

export function LineChart({ title, unit, points, from, to, step, height = 200 }: LineChartProps) {
  const [ref, width] = useWidth<HTMLDivElement>();
  const [hover, setHover] = useState<number | undefined>(undefined);

  const geo = useMemo(() => {
    const w = Math.max(width, 200);
    const plotW = w - M.left - M.right;
    const plotH = height - M.top - M.bottom;
    const values = points.map((p) => p.value);
    let lo = values.length ? Math.min(...values) : 0;
    let hi = values.length ? Math.max(...values) : 1;
    if (hi === lo) {
      const pad = Math.abs(lo) > 1 ? Math.abs(lo) * 0.05 : 1;
      lo -= pad;
      hi += pad;
    } else {
      const pad = (hi - lo) * 0.08;
      lo -= pad;
      hi += pad;
    }
    const yTicks = niceTicks(lo, hi, Math.max(2, Math.floor(plotH / 36)));
    lo = Math.min(lo, yTicks[0] ?? lo);
    hi = Math.max(hi, yTicks[yTicks.length - 1] ?? hi);
    const x = (t: number): number => M.left + ((t - from) / Math.max(1, to - from)) * plotW;
    const y = (v: number): number => M.top + (1 - (v - lo) / (hi - lo)) * plotH;
    let d = '';
    let prev: ChartPoint | undefined;
    for (const p of points) {
      const cmd = prev === undefined || p.ts - prev.ts > step * 2.5 ? 'M' : 'L';
      d += `${cmd}${x(p.ts).toFixed(1)},${y(p.value).toFixed(1)}`;
      prev = p;
    }
    const xTicks = timeTicks(from, to, Math.max(2, Math.floor(plotW / 80)));
    return { w, plotW, plotH, x, y, d, yTicks, xTicks };
  }, [width, height, points, from, to, step]);

  const u = unitText(unit);
  const withUnit = (v: number): string => `${fmtNumber(v)}${u === '' ? '' : u === '%' ? '%' : ` ${u}`}`;
  const label = u ? `${title} (${u})` : title;
  const last = points[points.length - 1];
  const min = points.length ? Math.min(...points.map((p) => p.value)) : undefined;
  const max = points.length ? Math.max(...points.map((p) => p.value)) : undefined;
  const summary = last
    ? `${label}: ${points.length} points, min ${withUnit(min!)}, max ${withUnit(max!)}, last ${withUnit(last.value)} at ${fmtDateTime(last.ts)}`
    : `${label}: no readings in this period`;

  const onMove = (e: PointerEvent<SVGSVGElement>): void => {
    if (!points.length) return;
    const rect = e.currentTarget.getBoundingClientRect();
    const t = from + ((e.clientX - rect.left - M.left) / geo.plotW) * (to - from);
    let best = 0;
    for (let i = 1; i < points.length; i++) {
      if (Math.abs(points[i]!.ts - t) < Math.abs(points[best]!.ts - t)) best = i;
    }
    setHover(best);
  };

  const hp = hover !== undefined ? points[hover] : undefined;
  const span = to - from;

  return (
    <figure className="chart">
      <figcaption>
        <span className="chart-title" title={unitTitle(unit)}>
          {label}
        </span>
        {hp ? (
          <span className="chart-readout">
            {withUnit(hp.value)} at {fmtDateTime(hp.ts)}
          </span>
        ) : last ? <span className="chart-readout">last {withUnit(last.value)}</span> : null}
      </figcaption>
      <div ref={ref} className="chart-box">
        {width > 0 ? (
          <svg
            width={geo.w}
            height={height}
            viewBox={`0 0 ${geo.w} ${height}`}
            role="img"
            aria-label={summary}
            onPointerMove={onMove}
            onPointerLeave={() => setHover(undefined)}
          >
            <g className="grid">
              {geo.yTicks.map((v) => (
                <line key={`y${v}`} x1={M.left} x2={M.left + geo.plotW} y1={geo.y(v)} y2={geo.y(v)} />
              ))}
              {geo.xTicks.map((t) => (
                <line key={`x${t}`} x1={geo.x(t)} x2={geo.x(t)} y1={M.top} y2={M.top + geo.plotH} />
              ))}
            </g>
            <g className="axis">
              <line x1={M.left} x2={M.left} y1={M.top} y2={M.top + geo.plotH} />
              <line x1={M.left} x2={M.left + geo.plotW} y1={M.top + geo.plotH} y2={M.top + geo.plotH} />
              {geo.yTicks.map((v) => (
                <text key={`yl${v}`} x={M.left - 6} y={geo.y(v)} textAnchor="end" dominantBaseline="middle">
                  {fmtNumber(v)}
                </text>
              ))}
              {geo.xTicks.map((t) => (
                <text key={`xl${t}`} x={geo.x(t)} y={M.top + geo.plotH + 14} textAnchor="middle">
                  {timeLabel(t, span)}
                </text>
              ))}
              <text className="axis-title" x={M.left + geo.plotW / 2} y={height - 4} textAnchor="middle">
                time
              </text>
              <text
                className="axis-title"
                transform={`translate(12 ${M.top + geo.plotH / 2}) rotate(-90)`}
                textAnchor="middle"
              >
                {u || title}
              </text>
            </g>
            {points.length ? <path className="line" d={geo.d} /> : null}
            {points.length === 1 && last ? <circle className="point" cx={geo.x(last.ts)} cy={geo.y(last.value)} r={3} /> : null}
            {hp ? (
              <g className="hover">
                <line x1={geo.x(hp.ts)} x2={geo.x(hp.ts)} y1={M.top} y2={M.top + geo.plotH} />
                <circle cx={geo.x(hp.ts)} cy={geo.y(hp.value)} r={4} />
              </g>
            ) : null}
            {!points.length ? (
              <text className="empty" x={M.left + geo.plotW / 2} y={M.top + geo.plotH / 2} textAnchor="middle">
                no readings in this period
              </text>
            ) : null}
          </svg>
        ) : null}
      </div>
    </figure>
  );
}
