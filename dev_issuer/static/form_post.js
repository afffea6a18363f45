// OAuth 2.0 Form Post Response Mode: submit the response to the client at once.
// A file, not inline script, so the page's Content-Security-Policy stays strict.
document.addEventListener("DOMContentLoaded", function () {
  document.getElementById("form-post").submit();
});
