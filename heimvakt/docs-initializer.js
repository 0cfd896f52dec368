// Starts Swagger UI on /docs (heimvakt/web.py). A file rather than an inline script, so the
// page runs under the same Content-Security-Policy as the rest of the server.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
