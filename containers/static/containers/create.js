// The create form: the number inputs take the chosen template's limits (min, max), which
// ride on each template's <option> (containers/forms.py, TemplateSelect).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const select = document.getElementById("id_template");
  if (!select) return;
  const follow = () => {
    const option = select.options[select.selectedIndex];
    if (!option) return;
    for (const name of ["cores", "memory_mib", "swap_mib", "disk_gib"]) {
      const input = document.getElementById(`id_${name}`);
      if (!input) continue;
      for (const bound of ["min", "max"]) {
        const value = option.getAttribute(`data-${bound}-${name}`);
        if (value !== null) input.setAttribute(bound, value);
      }
    }
  };
  select.addEventListener("change", follow);
  follow();
});
