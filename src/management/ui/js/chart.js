// Live line charts over uPlot (vendor/uPlot.iife.min.js, MIT): each refresh pushes one sample
// and the chart keeps the last ten minutes of them. The samples live in the page's memory
// only; the broker keeps no history for the UI.

const KEEP_SECONDS = 600;
const COLORS = ['#d9480f', '#1c7ed6', '#2b8a3e', '#ae3ec9', '#e67700', '#0c8599'];

/** A message count on an axis or in a legend. */
export function count(v) {
  if (v === null || v === undefined) return '';
  return Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(1);
}

export class LiveChart {
  /** series: labels; format: how a value reads in the legend (rate, count). */
  constructor(title, series, format = (v) => (v === null || v === undefined ? '' : String(v))) {
    this.series = series;
    this.data = [[], ...series.map(() => [])];
    this.el = document.createElement('div');
    this.el.className = 'chart';
    this.el.dataset.chart = title;
    this.el.dataset.points = '0';
    this.title = title;
    this.format = format;
    this.plot = null;
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(this.el);
  }

  options(width) {
    return {
      title: this.title,
      width,
      height: 190,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // set on every sample by window(): uPlot's own range for one point spans years
        x: { time: true, auto: false },
        y: { range: (u, min, max) => [0, Math.max(4, max * 1.1)] },
      },
      axes: [{}, { size: 60, values: (u, vals) => vals.map((v) => this.format(v)) }],
      series: [
        {},
        ...this.series.map((label, i) => ({
          label,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          value: (u, v) => this.format(v),
        })),
      ],
    };
  }

  resize() {
    const width = Math.max(300, this.el.clientWidth);
    if (!this.el.isConnected || typeof uPlot === 'undefined') return;
    if (!this.plot) {
      this.plot = new uPlot(this.options(width), this.data, this.el);
      this.window();
    } else if (Math.abs(this.plot.width - width) > 4) {
      this.plot.setSize({ width, height: 190 });
    }
  }

  /** One sample: values in the order of the series. */
  push(values, at = Date.now() / 1000) {
    this.data[0].push(at);
    values.forEach((v, i) => this.data[i + 1].push(v));
    while (this.data[0].length > 1 && this.data[0][0] < at - KEEP_SECONDS) {
      for (const column of this.data) column.shift();
    }
    this.el.dataset.points = String(this.data[0].length);
    this.el.dataset.last = JSON.stringify(values);
    if (this.plot) {
      this.plot.setData(this.data);
      this.window();
    } else this.resize();
  }

  /** The x axis: the samples kept, and at least the last minute so a new chart ticks in seconds. */
  window() {
    const times = this.data[0];
    if (!times.length) return;
    const max = times[times.length - 1];
    this.plot.setScale('x', { min: Math.min(times[0], max - 60), max });
  }
}
