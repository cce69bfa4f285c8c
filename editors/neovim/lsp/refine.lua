-- Default configuration of the refine language server, for `vim.lsp.enable("refine")`.
-- No `filetypes`: it attaches next to every buffer's own language server.
---@type vim.lsp.Config
return {
  cmd = { "refine-ls" },
  root_markers = { ".refine.toml", ".git" },
  init_options = {},
  handlers = {
    ["refine/reviewFinished"] = function(err, result, ctx)
      if not err then
        require("refine")._on_review_finished(result, ctx)
      end
    end,
  },
  on_init = function(client)
    require("refine")._on_init(client)
  end,
}
