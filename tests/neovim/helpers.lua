-- Shared set-up for the headless Neovim tests: loads the plugin from the repository with no
-- user config, enables the server, opens the test file and waits for the client.
local H = {}

local plugin = assert(os.getenv("REFINE_PLUGIN_DIR"), "REFINE_PLUGIN_DIR is not set")
vim.opt.runtimepath:prepend(plugin)
vim.cmd("filetype on")
vim.cmd("runtime plugin/refine.lua")

H.failures = 0

---Fails the test with a message (and exits non-zero).
function H.fail(msg)
  io.stderr:write("FAIL: " .. msg .. "\n")
  vim.cmd("cquit 1")
end

function H.eq(actual, expected, what)
  if not vim.deep_equal(actual, expected) then
    H.fail(("%s: expected %s, got %s"):format(what, vim.inspect(expected), vim.inspect(actual)))
  end
end

function H.ok(cond, what)
  if not cond then
    H.fail(what)
  end
end

---Waits for a condition, failing the test when it does not come within `ms`.
function H.wait(ms, pred, what)
  if not vim.wait(ms, pred, 20) then
    H.fail("timed out waiting for " .. what)
  end
end

---Opens `path` with `text` and waits for the refine client to attach.
---@return integer buf
function H.open(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  vim.lsp.enable("refine")
  vim.cmd("edit " .. vim.fn.fnameescape(path))
  local buf = vim.api.nvim_get_current_buf()
  H.wait(10000, function()
    return #vim.lsp.get_clients({ bufnr = buf, name = "refine" }) > 0
  end, "the refine client to attach")
  return buf
end

function H.text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n") .. "\n"
end

function H.refine_diagnostics(buf)
  return vim.tbl_filter(function(d)
    return d.source == "refine"
  end, vim.diagnostic.get(buf))
end

---The titles of the code actions the refine client offers on a line (zero-based).
---@return string[]
function H.code_action_titles(buf, line)
  local client = vim.lsp.get_clients({ bufnr = buf, name = "refine" })[1]
  local params = vim.lsp.util.make_range_params(0, client.offset_encoding)
  params.range = { start = { line = line, character = 0 }, ["end"] = { line = line, character = 1 } }
  params.context = { diagnostics = {} }
  local res = client:request_sync("textDocument/codeAction", params, 5000, buf)
  return vim.tbl_map(function(a)
    return a.title
  end, res.result or {})
end

---Collects User events of a pattern.
function H.record(pattern)
  local seen = {}
  vim.api.nvim_create_autocmd("User", {
    pattern = pattern,
    callback = function(ev)
      table.insert(seen, ev.data or true)
    end,
  })
  return seen
end

function H.done()
  vim.cmd("qall!")
end

return H
