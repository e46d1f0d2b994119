// Copy buttons: <button class="copy" data-copy="element-id" data-what="the bash command">. No inline
// script, so the CSP stays strict. The button keeps its width (no re-wrap of the code beside it) and
// the result is announced through the page's status region.
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  var status = document.getElementById("copy-status");
  var what = button.getAttribute("data-what") || "the text";
  function say(text) { if (status) { status.textContent = ""; setTimeout(function () { status.textContent = text; }, 50); } }
  if (!source || !navigator.clipboard) { say("Copying is not available here: select the text and copy it."); return; }
  navigator.clipboard.writeText(source.textContent.trim()).then(function () {
    var label = button.querySelector(".copy-label");
    button.setAttribute("data-copied", "");
    if (label) label.textContent = "Copied";
    say("Copied " + what + " to the clipboard.");
    setTimeout(function () { button.removeAttribute("data-copied"); if (label) label.textContent = "Copy"; }, 2000);
  }, function () { say("Could not copy " + what + ": select the text and copy it."); });
});
