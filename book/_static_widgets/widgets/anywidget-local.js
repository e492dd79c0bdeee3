// Part of "Attention, executed": lets the static widget renderer (embed-amd.js) work offline.
//
// The renderer loads a third-party widget module (here `anywidget`) with require.js: it first
// tries require(["anywidget"]) and only when that fails fetches it from a CDN. Registering the
// vendored copy that sits next to this file makes the first try succeed on a page at any depth,
// and the CDN fallback is pointed at a local folder, so a page never asks a third-party server.
(function () {
  "use strict";
  var script = document.currentScript;
  var here = script.src.replace(/[?#].*$/, "").replace(/[^/]*$/, "");
  if (typeof window.require === "function" && window.require.config) {
    window.require.config({
      paths: {
        anywidget: here + "anywidget",
        // The renderer finds its fonts next to the URL of this (named) module; without this entry
        // require.js would place it below the page's own folder and the fonts would 404.
        "@jupyter-widgets/html-manager/dist": here.replace(/\/$/, ""),
      },
    });
  }
  window.__jupyter_widgets_assets_path__ = here;
  // embed-amd.js reads this attribute from any script tag on the page when it starts.
  script.setAttribute("data-jupyter-widgets-cdn", here + "cdn/");
})();
