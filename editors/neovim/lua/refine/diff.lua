-- The revision as an inline diff: removed lines highlighted in place, added lines shown as
-- virtual lines below them. Nothing changes in the buffer until the user accepts.
local M = {}

M.ns = vim.api.nvim_create_namespace("refine_diff")

---@class refine.Hunk
---@field old_start integer 1-based line where the change begins
---@field removed string[]
---@field added string[]

---Parses a unified diff into hunks of consecutive changes.
---@param diff string
---@return refine.Hunk[]
function M.parse(diff)
  local hunks = {}
  local old_line, cur
  for line in vim.gsplit(diff, "\n", { plain = true }) do
    local start = line:match("^@@ %-(%d+)")
    if start then
      old_line, cur = tonumber(start), nil
    elseif old_line then
      local mark, text = line:sub(1, 1), line:sub(2)
      if mark == " " then
        old_line, cur = old_line + 1, nil
      elseif mark == "-" or mark == "+" then
        if not cur then
          cur = { old_start = old_line, removed = {}, added = {} }
          table.insert(hunks, cur)
        end
        if mark == "-" then
          table.insert(cur.removed, text)
          old_line = old_line + 1
        else
          table.insert(cur.added, text)
        end
      end
    end
  end
  return hunks
end

---Shows hunks in a buffer.
---@param buf integer
---@param hunks refine.Hunk[]
function M.render(buf, hunks)
  M.clear(buf)
  local last = vim.api.nvim_buf_line_count(buf)
  for _, h in ipairs(hunks) do
    for i = 1, #h.removed do
      local row = h.old_start - 2 + i
      if row < last then
        vim.api.nvim_buf_set_extmark(buf, M.ns, row, 0, { line_hl_group = "RefineDiffDelete" })
      end
    end
    if #h.added > 0 then
      local virt = {}
      for _, text in ipairs(h.added) do
        table.insert(virt, { { text, "RefineDiffAdd" } })
      end
      local after = h.old_start - 2 + #h.removed
      if after < 0 then
        vim.api.nvim_buf_set_extmark(buf, M.ns, 0, 0, { virt_lines = virt, virt_lines_above = true })
      else
        vim.api.nvim_buf_set_extmark(buf, M.ns, math.min(after, last - 1), 0, { virt_lines = virt })
      end
    end
  end
end

---Removes the inline diff.
---@param buf integer
function M.clear(buf)
  if vim.api.nvim_buf_is_valid(buf) then
    vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  end
end

---Shows a diff in a float.
---@param diff string
---@param border string
---@return integer buf, integer win
function M.float(diff, border)
  local lines = vim.split(diff, "\n", { plain = true })
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].filetype = "diff"
  vim.bo[buf].bufhidden = "wipe"
  local width = 20
  for _, l in ipairs(lines) do
    width = math.max(width, vim.fn.strdisplaywidth(l))
  end
  local win = vim.api.nvim_open_win(buf, true, {
    relative = "cursor",
    row = 1,
    col = 0,
    width = math.min(width, vim.o.columns - 4),
    height = math.min(#lines, math.max(vim.o.lines - 6, 3)),
    border = border,
    title = " refine: revision ",
  })
  vim.keymap.set("n", "q", "<cmd>close<cr>", { buffer = buf })
  return buf, win
end

return M
