// Repeats a task: now, then `intervalMs` after each run ends (never two at once), skipping while
// the tab is hidden (a hidden tab catches up when it is shown again).

/**
 * `task(signal)` must handle its own errors. Returns { now(): runs at once, or joins the run in
 * flight; restart(): aborts the run in flight and runs again (its inputs changed); stop() }.
 */
export function poller(task, intervalMs) {
  let timer;
  let controller = null;
  let running = null;
  let stopped = false;

  function run() {
    if (running) return running;
    clearTimeout(timer);
    const own = (controller = new AbortController());
    running = (async () => {
      try {
        return await task(own.signal);
      } finally {
        if (controller === own) {
          running = null;
          if (!stopped) timer = setTimeout(tick, intervalMs);
        }
      }
    })();
    return running;
  }

  function tick() {
    if (document.hidden) timer = setTimeout(tick, intervalMs);
    else run();
  }

  return {
    now: run,
    restart() {
      controller?.abort();
      running = null;
      return run();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      controller?.abort();
    },
  };
}
