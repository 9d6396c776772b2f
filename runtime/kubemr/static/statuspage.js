// Live updates for the kubemr status page (kubemr/statuspage.py renders it).
// Every second, fetch the page's main part again, rendered by the server, and swap it in;
// stop once the report is final. The URL is relative, so the page works behind
// `kubectl port-forward` or a proxy path. No framework, no build step.
(() => {
  "use strict";
  const PERIOD_MS = 1000;
  const main = document.getElementById("report");
  const banner = document.getElementById("connection");
  const isFinal = () => main.querySelector("[data-final='true']") !== null;

  async function refresh() {
    if (isFinal()) {
      return;
    }
    try {
      const response = await fetch("fragment", { cache: "no-store" });
      if (!response.ok) {
        throw new Error(`HTTP ${response.status}`);
      }
      main.innerHTML = await response.text();
      banner.hidden = true;
    } catch (error) {
      banner.textContent = `cannot reach the master (${error.message}); retrying`;
      banner.hidden = false;
    }
    setTimeout(refresh, PERIOD_MS);
  }

  setTimeout(refresh, PERIOD_MS);
})();
