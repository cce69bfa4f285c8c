-- refine.nvim: commands, <Plug> mappings and highlights. The server does the work.
if vim.g.loaded_refine then
  return
end
vim.g.loaded_refine = true

if vim.fn.has("nvim-0.11") ~= 1 then
  vim.notify("refine.nvim needs Neovim 0.11 or later", vim.log.levels.ERROR)
  return
end

local function range_of(opts)
  if opts.range > 0 then
    return opts.line1, opts.line2
  end
  local line = vim.api.nvim_win_get_cursor(0)[1]
  return line, line
end

local commands = {
  Refine = { "review", "Review the lines (range or current line) with refine-ls" },
  RefineNow = { "now", "Review, then show the revision inline to accept or reject" },
  RefineApply = { "apply", "Apply the revision of the review under the cursor" },
  RefineDiff = { "diff", "Show the revision as a diff in a float" },
  RefineCancel = { "cancel", "Cancel the review running in this buffer" },
  RefineClear = { "clear", "Remove refine's findings from the buffer" },
  RefineUndismiss = { "undismiss", "Show again the findings dismissed in this buffer's last review" },
}
for name, spec in pairs(commands) do
  vim.api.nvim_create_user_command(name, function(opts)
    local refine = require("refine")
    local first, last = range_of(opts)
    refine[spec[1]]({ line1 = first, line2 = last })
  end, { range = true, desc = spec[2] })
end

vim.api.nvim_create_user_command("RefineDismiss", function(opts)
  require("refine").dismiss({ scope = opts.args ~= "" and opts.args or nil })
end, {
  nargs = "?",
  complete = function()
    return { "finding", "principle", "file" }
  end,
  desc = "Dismiss the refine finding under the cursor (finding, principle or file)",
})

vim.keymap.set({ "n", "x" }, "<Plug>(RefineReview)", function()
  local mode = vim.fn.mode()
  if mode == "v" or mode == "V" or mode == "\22" then
    local a, b = vim.fn.line("v"), vim.fn.line(".")
    vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes("<Esc>", true, false, true), "nx", false)
    require("refine").review({ line1 = math.min(a, b), line2 = math.max(a, b) })
  else
    local line = vim.fn.line(".")
    require("refine").review({ line1 = line, line2 = line })
  end
end, { desc = "refine: review selection" })
vim.keymap.set("n", "<Plug>(RefineAccept)", function()
  require("refine").accept()
end, { desc = "refine: accept the revision" })
vim.keymap.set("n", "<Plug>(RefineReject)", function()
  require("refine").reject()
end, { desc = "refine: reject the revision" })

for group, link in pairs({
  RefineDiffAdd = "DiffAdd",
  RefineDiffDelete = "DiffDelete",
  RefineStatus = "DiagnosticInfo",
}) do
  vim.api.nvim_set_hl(0, group, { link = link, default = true })
end
