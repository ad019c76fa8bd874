// Autocomplete while typing: fills the search box's datalist from the suggestion API.
// The shop works without it (every action is a plain form).
(function () {
  var input = document.getElementById("q");
  var list = document.getElementById("suggestions");
  if (!input || !list || !window.fetch) { return; }
  var timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    var q = input.value.trim();
    if (q.length < 2) { return; }
    timer = setTimeout(function () {
      fetch("/api/v1/search/suggest?limit=8&q=" + encodeURIComponent(q))
        .then(function (r) { return r.ok ? r.json() : { suggestions: [] }; })
        .then(function (body) {
          while (list.firstChild) { list.removeChild(list.firstChild); }
          (body.suggestions || []).forEach(function (s) {
            var o = document.createElement("option");
            o.value = s.text;
            list.appendChild(o);
          });
        })
        .catch(function () {});
    }, 150);
  });
})();
